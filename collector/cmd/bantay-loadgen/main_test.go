package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// TestFlagsValidated: every bad flag is refused with its name, before anything is sent.
func TestFlagsValidated(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-peer", "-protocol", "quic"}, "-protocol"},
		{[]string{"-peer", "-rate", "-5"}, "-rate"},
		{[]string{"-peer", "-rate", "100", "-flat-out"}, "-rate and -flat-out"},
		{[]string{"-peer", "-interval", "0"}, "-interval"},
		{[]string{"-peer", "-concurrency", "-1"}, "-concurrency"},
		{[]string{"-peer", "-duration", "0s"}, "-duration"},
		{[]string{"-peer", "-duration", "2h"}, "-duration"},
		{[]string{"-peer", "-timeout", "0s"}, "-timeout"},
		{[]string{"-peer", "-token-dir", dir}, "-peer sends without identity"},
		{[]string{"-token-dir", dir, "-tokens", "x.yaml"}, "-token-dir and -tokens"},
		{[]string{}, "probes need tokens"},
		{[]string{"-peer", "-ws-url", "ws://127.0.0.1:1/ws"}, "-ws-url"},
		{[]string{"-peer", "-probes", "0"}, "-probes"},
		{[]string{"-peer", "-targets", "0"}, "-targets"},
		{[]string{"-peer", "-uplinks", "6"}, "-uplinks"},
		{[]string{"-token-dir", dir}, "-token-dir: probe lg-00000"},
		{[]string{"-peer", "-protocol", "http", "-endpoint", "127.0.0.1:4318"}, "-endpoint"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), append([]string{"run"}, tc.args...), &bytes.Buffer{}, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %q: error %v, want one naming %q", tc.args, err, tc.want)
		}
	}
}

// TestTokensFile: -tokens gives each probe its token and names a probe it lacks.
func TestTokensFile(t *testing.T) {
	fleet, err := otlpload.NewFleet(2, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(path, []byte("lg-00000: secret-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = loadTokens(fleet, "", path)
	if err == nil || !strings.Contains(err.Error(), "no token for probe lg-00001") {
		t.Fatalf("got %v, want the missing probe named", err)
	}
	if err := os.WriteFile(path, []byte("lg-00000: secret-a\nlg-00001: secret-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := loadTokens(fleet, "", path); err != nil {
		t.Fatal(err)
	}
	if fleet[0].Token != "secret-a" || fleet[1].Token != "secret-b" {
		t.Fatalf("tokens %q %q", fleet[0].Token, fleet[1].Token)
	}
}

// TestRunAgainstBantay runs the command briefly against the real collector
// binary with the production pipeline and the fleet's registry and tokens,
// over both protocols: every acknowledged point is queryable, nothing is
// refused, and both freshness measurements have samples.
func TestRunAgainstBantay(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	ctx := context.Background()
	dir := t.TempDir()
	bin, err := buildCollector(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	ff := fleetFlags{probes: 6, targets: 4, uplinks: 2}
	fleet, err := ff.fleet()
	if err != nil {
		t.Fatal(err)
	}
	b, err := startBantay(ctx, dir, fleet, defaultBlockDuration, bin)
	if err != nil {
		t.Fatal(err)
	}
	defer b.stop()
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			endpoint := b.grpc
			if proto == "http" {
				endpoint = "http://" + b.otlpHTTP
			}
			out := filepath.Join(t.TempDir(), "summary.json")
			args := []string{"run", "-protocol", proto, "-endpoint", endpoint, "-probes", "6", "-targets", "4", "-uplinks", "2",
				"-token-dir", filepath.Join(dir, "tokens"), "-rate", "2000", "-duration", "3s", "-progress=false",
				"-query-url", "http://" + b.web, "-query-token", b.readerToken, "-ws-url", "ws://" + b.web + "/ws", "-json", out}
			var stderr bytes.Buffer
			if err := run(ctx, args, &bytes.Buffer{}, &stderr); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			var sum Summary
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &sum); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", data)
			if sum.AckedPoints == 0 || len(sum.RefusedPoints) != 0 {
				t.Fatalf("acked %d, refused %v %v", sum.AckedPoints, sum.RefusedPoints, sum.RefusalExamples)
			}
			if q := sum.Queryable; q == nil || q.StoredPoints != sum.AckedPoints || q.MissingPoints != 0 || q.Share != 1 {
				t.Fatalf("acked %d, queryable %+v", sum.AckedPoints, sum.Queryable)
			}
			if sum.APIFreshness == nil || sum.APIFreshness.Samples == 0 || sum.WSFreshness == nil || sum.WSFreshness.Samples == 0 {
				t.Fatalf("freshness without samples: api %+v ws %+v", sum.APIFreshness, sum.WSFreshness)
			}
		})
	}
}

// TestBenchFlagsValidated: bench refuses bad steps before starting either side.
func TestBenchFlagsValidated(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-rates", "5000,0"}, `-rates: "0"`},
		{[]string{"-rates", "fast"}, `-rates: "fast"`},
		{[]string{"-step", "2m"}, "-step"},
		{[]string{"-sides", "bantay,prometheus"}, `-sides: "prometheus"`},
		{[]string{"-uplinks", "0"}, "-uplinks"},
	} {
		err := run(context.Background(), append([]string{"bench"}, tc.args...), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bench %q: error %v, want one naming %q", tc.args, err, tc.want)
		}
	}
}

// TestSoakSamples runs a short soak against the real collector binary: every
// sample has the collector's RSS, goroutines and open files, and everything
// acknowledged is queryable.
func TestSoakSamples(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary")
	dir := t.TempDir()
	out := filepath.Join(dir, "soak.json")
	var stdout, stderr bytes.Buffer
	args := []string{"soak", "-probes", "4", "-targets", "2", "-rate", "500", "-duration", "6s", "-every", "2s", "-block-duration", "1m",
		"-dir", filepath.Join(dir, "work"), "-json", out}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	t.Logf("%s", stdout.String())
	var res soakResult
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Samples) < 3 {
		t.Fatalf("%d samples over 6 s every 2 s", len(res.Samples))
	}
	for _, s := range res.Samples {
		if s.RSSBytes == 0 || s.Goroutines == 0 || s.OpenFDs == 0 || s.Threads == 0 {
			t.Fatalf("sample without figures: %+v", s)
		}
	}
	if last := res.Samples[len(res.Samples)-1]; last.HeadSeries == 0 || last.AppendedSamples == 0 {
		t.Fatalf("the store took nothing: %+v", last)
	}
	if q := res.Queryable; res.AckedPoints == 0 || q == nil || q.StoredPoints != res.AckedPoints {
		t.Fatalf("acked %d, queryable %+v", res.AckedPoints, res.Queryable)
	}
}

// TestSoakFlagsValidated: soak refuses bad flags before building anything.
func TestSoakFlagsValidated(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-every", "0s"}, "-every"},
		{[]string{"-duration", "10s", "-every", "30s"}, "-duration"},
		{[]string{"-rate", "0"}, "-rate"},
		{[]string{"-probes", "0"}, "-probes"},
	} {
		err := run(context.Background(), append([]string{"soak"}, tc.args...), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("soak %q: error %v, want one naming %q", tc.args, err, tc.want)
		}
	}
}

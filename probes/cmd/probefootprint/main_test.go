package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// TestFootprint runs the tool for real on a handful of udp targets with a
// short interval: the probe it starts must take every target's rounds
// against the tool's reflectors without a failure, deliver to its sink,
// and be reported.
func TestFootprint(t *testing.T) {
	testenv.LongTest(t, "a 20-second footprint run")
	probe := testenv.Command(t, "github.com/bantay-noc/bantay/probes/cmd/bantay-probe")
	var out bytes.Buffer
	// A net of its own, so a footprint run elsewhere on the machine (on the
	// default 127.77.x.y) cannot hold the reflectors' addresses.
	net := strconv.Itoa(100 + rand.IntN(100))
	err := run(context.Background(), []string{"-probe", probe, "-targets", "5", "-interval", "2s", "-timeout", "1s",
		"-warmup", "2s", "-duration", "5s", "-net", net}, &out)
	t.Logf("probefootprint:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`runs started (\d+) .*attempts (\d+) .*failures (\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no runs line in the report")
	}
	runs, _ := strconv.Atoi(m[1])
	attempts, _ := strconv.Atoi(m[2])
	// A run is counted when it starts and its attempts when it ends, so
	// each of the 5 targets may have a run astride each of the two exports.
	if d := attempts - 5*runs; runs == 0 || d < -2*5*5 || d > 2*5*5 || m[3] != "0" {
		t.Errorf("%d runs, %d attempts, %s failures; want rounds of 5 and no failure", runs, attempts, m[3])
	}
	for _, want := range []string{"% of one core", "RSS: mean", "memory limit: ", "lateness: mean"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestFlags: a bad flag is refused by name before anything starts.
func TestFlags(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"-method tcp", "-method"},
		{"-targets 0", "-targets"},
		{"-targets 70000", "-targets"},
		{"-net 0", "-net"},
		{"-net 255", "-net"},
		{"-duration 0s", "-duration"},
		{"-interval 15s -duration 10s", "-duration"},
		{"-warmup 1s", "-warmup"},
		{"-probe /nonexistent/bantay-probe", "-probe"},
	} {
		err := run(context.Background(), strings.Fields(tc.args), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}

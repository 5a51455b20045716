package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bantay-noc/bantay/dashboards"
	"github.com/bantay-noc/bantay/internal/demo"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// TestREADMEFirstCommandServesTheShippedRules runs the demo as the README's
// first command does: the built binary, from the repository root, with the
// default relative data dir. Only the listeners move to free ports, so the
// test can run beside a demo on this machine. The shipped recording and
// alerting rules must be in force (/api/v1/rules). A relative data dir once
// wrote rule_files that Prometheus resolved against the config file's own
// folder: they matched nothing, and no alert could ever fire.
func TestREADMEFirstCommandServesTheShippedRules(t *testing.T) {
	testenv.LongTest(t, "the demo binary run from the repository root")
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	dataDir := filepath.Join(root, demo.Defaults().DataDir)
	if _, err := os.Stat(dataDir); errors.Is(err, os.ErrNotExist) {
		t.Cleanup(func() { _ = os.RemoveAll(dataDir) }) // only what this test made
	}

	bin := filepath.Join(t.TempDir(), "bantay-demo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ports, err := demo.FreeLoopbackPorts()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-http", ports.HTTPAddr, "-otlp-grpc", ports.GRPCAddr, "-otlp-http", ports.OTLPHTTPAddr,
		"-health", ports.HealthAddr, "-telemetry-port", strconv.Itoa(ports.TelemetryPort))
	cmd.Dir = root
	cmd.Stderr = testWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once the process is reaped; then waitErr is set
	var waitErr error
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			t.Log(sc.Text())
			if strings.Contains(sc.Text(), "Bantay demo is running") {
				close(ready)
			}
		}
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
			if waitErr != nil && !t.Failed() {
				t.Errorf("demo did not stop cleanly: %v", waitErr)
			}
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			t.Error("demo did not stop within a minute of SIGINT")
		}
	})
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("demo exited before it was ready: %v", waitErr)
	case <-time.After(2 * time.Minute):
		t.Fatal("demo not ready after 2 minutes")
	}

	var answer struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				File  string `json:"file"`
				Rules []struct {
					Name string `json:"name"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	resp, err := http.Get("http://" + ports.HTTPAddr + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("/api/v1/rules: %v", err)
	}
	served := map[string][]string{}
	for _, g := range answer.Data.Groups {
		for _, r := range g.Rules {
			served[g.Name] = append(served[g.Name], r.Name)
		}
	}
	for group, rules := range shippedRules(t) {
		if !slices.Equal(served[group], rules) {
			t.Errorf("group %s: served rules %v, shipped %v", group, served[group], rules)
		}
	}
	if len(served) == 0 {
		t.Errorf("/api/v1/rules serves no groups")
	}
}

// shippedRules reads the rule files in dashboards/rules: group → rule names.
func shippedRules(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, name := range dashboards.RuleFileNames {
		data, err := dashboards.RuleFiles.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Groups []struct {
				Name  string
				Rules []struct{ Record, Alert string }
			}
		}
		if err := yaml.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				out[g.Name] = append(out[g.Name], r.Record+r.Alert)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no shipped rules found")
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

package config

import (
	"strings"
	"testing"
	"time"
)

func TestRecordingDefaultsAndChoices(t *testing.T) {
	cfg, err := Parse("probe.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Recording; r.Histograms != HistogramsClassic || !r.Classic() || r.Exponential() || r.Slow != 0 {
		t.Errorf("default recording %+v: want classic buckets only, every round's slowest answer marked", r)
	}
	for _, tc := range []struct {
		mode                 string
		classic, exponential bool
	}{{"classic", true, false}, {"exponential", false, true}, {"both", true, true}} {
		cfg, err := Parse("probe.yaml", []byte(strings.Replace(valid, "targets:\n", "recording: {histograms: "+tc.mode+", slow: 150ms}\ntargets:\n", 1)))
		if err != nil {
			t.Fatal(err)
		}
		if r := cfg.Recording; r.Classic() != tc.classic || r.Exponential() != tc.exponential || r.Slow != 150*time.Millisecond {
			t.Errorf("%s: %+v classic=%v exponential=%v", tc.mode, r, r.Classic(), r.Exponential())
		}
	}
}

func TestRecordingValidationNamesTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"recording: {histograms: native}", `probe.yaml:12: recording.histograms: "native" is not one of classic, exponential, both`},
		{"recording: {slow: -1s}", "probe.yaml:12: recording.slow: -1s must not be negative"},
		{"recording: {slow: 2m}", "probe.yaml:12: recording.slow: 2m0s is longer than the longest timeout"},
		{"recording: {histogram: both}", "probe.yaml:12: recording.histogram: is not a known field (known: histograms, slow)"},
	} {
		_, err := Parse("probe.yaml", []byte(strings.Replace(valid, "targets:\n", tc.yaml+"\ntargets:\n", 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

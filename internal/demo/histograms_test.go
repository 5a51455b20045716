package demo

import (
	"context"
	"strings"
	"testing"
)

// A bad -histograms is refused before the demo starts anything (the
// probes' own validation would only run once the collector is up).
func TestRunRefusesUnknownHistograms(t *testing.T) {
	opts := testOptions(t)
	opts.Histograms = "native"
	err := Run(context.Background(), opts, nil)
	if err == nil || !strings.Contains(err.Error(), `histograms: "native" is not one of classic, exponential, both`) {
		t.Fatalf("Run: %v, want the bad histograms named", err)
	}
}

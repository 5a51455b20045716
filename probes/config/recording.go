package config

import (
	"strings"
	"time"
)

// Histogram forms of network.latency (recording.histograms).
const (
	// HistogramsClassic records the explicit-bucket histogram only
	// (network_latency_milliseconds_bucket): what the shipped dashboards,
	// rules and the heatmap read.
	HistogramsClassic = "classic"
	// HistogramsExponential records the base-2 exponential histogram only
	// (network.latency.native, a Prometheus native histogram).
	HistogramsExponential = "exponential"
	// HistogramsBoth records both from the same measurements.
	HistogramsBoth = "both"
)

// HistogramModes are the values recording.histograms accepts.
var HistogramModes = []string{HistogramsClassic, HistogramsExponential, HistogramsBoth}

// Recording says how measurements are recorded.
type Recording struct {
	// Histograms is classic (default), exponential or both.
	Histograms string `yaml:"histograms"`
	// Slow is the latency from which a round's slowest answer carries an
	// exemplar (its trace id) on its histogram bucket; 0 (default) gives
	// every round's slowest answer one. Failures always carry one.
	Slow time.Duration `yaml:"slow"`
}

// Classic says whether the classic histogram is recorded.
func (r Recording) Classic() bool { return r.Histograms != HistogramsExponential }

// Exponential says whether the exponential histogram is recorded.
func (r Recording) Exponential() bool { return r.Histograms != HistogramsClassic }

func (r *Recording) validate(v *validator) {
	switch r.Histograms {
	case "":
		r.Histograms = HistogramsClassic
	case HistogramsClassic, HistogramsExponential, HistogramsBoth:
	default:
		v.add("recording.histograms", "%q is not one of %s", r.Histograms, strings.Join(HistogramModes, ", "))
	}
	if r.Slow < 0 {
		v.add("recording.slow", "%s must not be negative (0 marks every round's slowest answer)", r.Slow)
	} else if r.Slow > MaxTimeout {
		v.add("recording.slow", "%s is longer than the longest timeout (%s): no answer could be that slow", r.Slow, MaxTimeout)
	}
}

// Package pathstate is the vocabulary the heatmap shares with the event
// pipeline: a cell's identity (CellKey, a network path over one carrier and
// access network type) and its state changes (Event). It depends on nothing
// but the standard library, so internal/events, and the collector
// components that import it, can name heatmap events without linking the
// heatmap's aggregation, websocket hub or HTTP handlers.
package pathstate

import (
	"fmt"
	"strconv"
	"time"
)

// CellKey identifies one heatmap cell: a path from a source city to a
// destination city over one carrier and access network type. Every probe
// and target with these four labels is aggregated into the cell.
type CellKey struct {
	SrcCity     string
	DstCity     string
	Carrier     string
	NetworkType string
}

// ID is the cell's stable protocol id ("src|dst|carrier|network_type").
func (k CellKey) ID() string {
	return k.SrcCity + "|" + k.DstCity + "|" + k.Carrier + "|" + k.NetworkType
}

// Kind names a path state change.
type Kind string

// The path state changes a subscriber is told about.
const (
	// Degraded: latency (p95) or loss rose far above the cell's own
	// baseline and stayed there for the hold time.
	Degraded Kind = "degraded"
	// Recovered: a degraded cell came back near its baseline.
	Recovered Kind = "recovered"
	// Stale: no data for more than the stale threshold.
	Stale Kind = "stale"
	// Back: a stale cell receives data again.
	Back Kind = "back"
)

// Event is one path state change, with the numbers that caused it.
type Event struct {
	Kind Kind
	// Time is when the change was decided (the aggregator's clock).
	Time time.Time
	Cell CellKey
	// Reason says which condition fired, e.g. "latency", "loss",
	// "latency+loss", "no data for 45s".
	Reason string
	// Window is the window the numbers below were measured over.
	Window time.Duration
	// P95Before is the baseline p95 (ms): the last hour's p95 when the cell
	// degraded; for recovered, the same baseline it was judged against.
	P95Before float64
	// P95After is the p95 (ms) over Window at the time of the change.
	P95After float64
	// Loss is the loss ratio (0..1) over Window; NaN without attempts.
	Loss float64
	// Samples is the number of latency samples in Window.
	Samples uint64
	// LastSeen is the time of the newest data point of the cell.
	LastSeen time.Time
}

// String renders the event for logs.
func (e Event) String() string {
	return fmt.Sprintf("%s %s→%s %s/%s: %s (p95 %.1f→%.1f ms, loss %.3f, %d samples over %v)",
		e.Kind, e.Cell.SrcCity, e.Cell.DstCity, e.Cell.Carrier, e.Cell.NetworkType, e.Reason,
		e.P95Before, e.P95After, e.Loss, e.Samples, e.Window)
}

// WindowName renders a window the way the websocket protocol and the
// events name it: whole hours, minutes or seconds as "1h", "5m", "90s"
// (anything else as time.Duration prints it).
func WindowName(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

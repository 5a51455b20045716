// Package scaleouttest is the end-to-end test of several collectors, each
// owning a shard of the probes, behind a real Thanos receive + query
// (docs/SCALING.md). It runs without the race detector with the other
// end-to-end packages: it starts three collectors, two Thanos processes and
// a load, and measures nothing the detector could distort, but on a shared
// 2-core machine the detector's slowdown would only cost time.
package scaleouttest

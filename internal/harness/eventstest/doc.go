// Package eventstest holds the end-to-end test of Bantay's events: the
// demo (real collector, real probes, impaired real targets) stages a path
// degradation, a probe timeout storm and a probe outage, and the events are
// read back from a real receiver of Loki's push protocol (VictoriaLogs).
// It has no code of its own; see events_test.go and docs/events.md.
package eventstest

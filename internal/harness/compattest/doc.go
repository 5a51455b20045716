// Package compattest proves that Bantay drops into the Prometheus ecosystem
// unchanged: its tests run the demo (collector, probes, impaired network) in
// process next to a real Prometheus and a real Alertmanager (Debian
// packages) and check that
//
//   - the same data, remote-written by Bantay to Prometheus, answers a suite
//     of PromQL queries and the series/labels/label-values endpoints the
//     same on both (differential compatibility);
//   - every dashboard panel query has data from the demo-fed collector;
//   - a latency incident staged in the simulator reaches Alertmanager as a
//     firing alert with the right labels, then as a resolved one;
//   - POST /-/reload picks up a changed rule file.
//
// The non-test files hold the small helpers those tests share: comparing
// query answers within a tolerance, choosing evaluation times that no
// sample timestamp sits on, and reading /api/v1/rules and /api/v1/alerts.
// docs/compatibility.md describes what is compared and every known
// difference.
package compattest

package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/demo/netsim"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/harness/victorialogs"
)

// TestStagedIncident stages an incident through the page's button endpoint
// and follows it through the whole system: the path's heatmap cell turns
// degraded, its path_degraded event reaches the page's feed and Loki
// (VictoriaLogs speaking the Loki push protocol). The times from the
// incident's start are logged; there is no timing assertion, only bounded
// waits. With BANTAY_INCIDENT_MEASURE=1 the demo runs at its default probe
// interval, as `bantay-demo` does, and the test also waits (up to 10
// minutes) for the first alert at a real Alertmanager: the figures in
// docs/BENCHMARKS.md come from that run.
func TestStagedIncident(t *testing.T) {
	testenv.LongTest(t, "a staged incident in the end-to-end demo")
	measure := os.Getenv("BANTAY_INCIDENT_MEASURE") == "1"
	vl := victorialogs.Start(t)
	opts := testOptions(t)
	opts.LokiURL = vl.PushURL()
	var am *promtest.Alertmanager
	if measure {
		// As `bantay-demo -incident 'Davao/Globe: +80ms, 50% loss after
		// 60s for 10m'` runs it: the default probe interval, the incident
		// staged a minute after start and long enough for the alerts.
		opts.ProbeInterval = Defaults().ProbeInterval
		am = promtest.StartAlertmanager(t)
		opts.AlertmanagerURL = am.URL
		inc, err := netsim.ParseIncident("Davao/Globe: +80ms, 50% loss after 60s for 10m")
		if err != nil {
			t.Fatal(err)
		}
		opts.Incident = &inc
	}
	// Otherwise the button's incident, DefaultIncident: Manila → Davao on Globe.
	d := startDemo(t, opts)
	base := "http://" + opts.HTTPAddr
	ctx := context.Background()
	c := cellKey{"Manila", "Davao", "Globe", "5g"}

	var start time.Time
	if measure {
		var st IncidentStatus
		waitFor(t, d, "the -incident to start", 2*time.Minute, func() bool {
			st = incidentStatus(t, base)
			return st.State == "active"
		})
		start = time.UnixMilli(st.Start)
	} else {
		// The path has measured for a while, so it has a baseline.
		waitSnapshot(t, d, base, "Manila → Davao on Globe with a baseline", func(s snapshot) bool {
			cell, ok := s.cell(c)
			return ok && cell.Count >= 10 && cell.State == "ok"
		})
		resp, err := http.Post(base+PathIncident, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		var st IncidentStatus
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusAccepted || st.Incident != DefaultIncident {
			t.Fatalf("POST %s: HTTP %d, %+v, %v", PathIncident, resp.StatusCode, st, err)
		}
		resp.Body.Close()
		if again, err := http.Post(base+PathIncident, "", nil); err != nil || again.StatusCode != http.StatusConflict {
			t.Errorf("a second POST while staged: %v, %v; want 409", again.Status, err)
		} else {
			again.Body.Close()
		}
	}

	waitSnapshot(t, d, base, "the cell degraded", func(s snapshot) bool {
		cell, _ := s.cell(c)
		return cell.State == "degraded"
	})
	t.Logf("incident → degraded cell: %v", time.Since(start).Round(100*time.Millisecond))
	waitSnapshot(t, d, base, "path_degraded in the feed", func(s snapshot) bool {
		for _, e := range s.Events {
			if e.Kind == "path_degraded" && (cellKey{e.SrcCity, e.DstCity, e.Carrier, e.NetworkType}) == c && e.Time >= start.UnixMilli() {
				return true
			}
		}
		return false
	})
	t.Logf("incident → event in the feed: %v", time.Since(start).Round(100*time.Millisecond))
	// kind, src_city and carrier are stream labels; dst_city is structured
	// metadata (docs/loki.md).
	query := fmt.Sprintf(`_stream:{kind="path_degraded",src_city=%q,carrier=%q} dst_city:=%q _time:>%s`,
		c.Src, c.Carrier, c.Dst, start.Add(-time.Second).UTC().Format(time.RFC3339Nano))
	waitFor(t, d, "path_degraded in Loki", 90*time.Second, func() bool {
		rows, err := vl.Query(ctx, query)
		return err == nil && len(rows) > 0
	})
	t.Logf("incident → event in Loki: %v", time.Since(start).Round(100*time.Millisecond))

	if am != nil {
		waitFor(t, d, "an alert at Alertmanager for the path", 10*time.Minute, func() bool {
			alerts, err := am.Alerts(ctx)
			for _, a := range alerts {
				if err == nil && a.Labels["src_city"] == c.Src && a.Labels["dst_city"] == c.Dst && a.Labels["carrier"] == c.Carrier {
					t.Logf("incident → %s at Alertmanager: %v", a.Labels["alertname"], time.Since(start).Round(time.Second))
					return true
				}
			}
			return false
		})
	}
}

func incidentStatus(t *testing.T, base string) IncidentStatus {
	t.Helper()
	var st IncidentStatus
	resp, err := http.Get(base + PathIncident)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d, %v", PathIncident, resp.StatusCode, err)
	}
	return st
}

type cellKey struct{ Src, Dst, Carrier, NetworkType string }

// snapshot is the part of the heatmap's snapshot (the websocket's first
// frame, also at /api/heatmap/snapshot) this test reads.
type snapshot struct {
	Cells []struct {
		SrcCity     string `json:"src_city"`
		DstCity     string `json:"dst_city"`
		Carrier     string `json:"carrier"`
		NetworkType string `json:"network_type"`
		Count       int    `json:"count"`
		State       string `json:"state"`
	} `json:"cells"`
	Events []struct {
		Time        int64  `json:"time"`
		Kind        string `json:"kind"`
		SrcCity     string `json:"src_city"`
		DstCity     string `json:"dst_city"`
		Carrier     string `json:"carrier"`
		NetworkType string `json:"network_type"`
	} `json:"events"`
}

type snapshotCell struct {
	Count int
	State string
}

func (s snapshot) cell(k cellKey) (snapshotCell, bool) {
	for _, c := range s.Cells {
		if (cellKey{c.SrcCity, c.DstCity, c.Carrier, c.NetworkType}) == k {
			return snapshotCell{c.Count, c.State}, true
		}
	}
	return snapshotCell{}, false
}

// waitSnapshot polls the heatmap snapshot until ok accepts it (at most 3
// minutes) and returns it.
func waitSnapshot(t *testing.T, d *Running, base, what string, ok func(snapshot) bool) snapshot {
	t.Helper()
	var s snapshot
	waitFor(t, d, what, 3*time.Minute, func() bool {
		resp, err := http.Get(base + "/api/heatmap/snapshot")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		s = snapshot{}
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&s) == nil && ok(s)
	})
	return s
}

// waitFor polls ok every half second until it holds, failing the test
// after limit or if the demo stops.
func waitFor(t *testing.T, d *Running, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		select {
		case <-d.Exited():
			t.Fatalf("waiting for %s: the demo stopped: %v", what, d.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after %v", what, limit)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// The demo's middleware answers /demo/incident itself, passes everything
// else to the bantay extension's handler, and marks only the page's answer.
func TestControlMiddlewareRoutesAndMarksThePage(t *testing.T) {
	c := &control{handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })}
	wrap, err := c.GetHTTPHandler(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h, err := wrap(context.Background(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]struct {
		code   int
		header string
	}{
		"/":                {http.StatusNoContent, PathIncident},
		PathIncident:       {http.StatusTeapot, ""},
		"/api/v1/query":    {http.StatusNoContent, ""},
		"/assets/x/app.js": {http.StatusNoContent, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, path, nil))
		if rec.Code != want.code || rec.Header().Get(DemoHeader) != want.header {
			t.Errorf("%s: HTTP %d, %s %q; want %d, %q", path, rec.Code, DemoHeader, rec.Header().Get(DemoHeader), want.code, want.header)
		}
	}
}

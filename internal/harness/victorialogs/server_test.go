package victorialogs

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// pushOne sends a single entry the way any Loki client does: a
// snappy-compressed protobuf PushRequest built from Loki's own types.
func pushOne(t *testing.T, url string, ts time.Time, line string) {
	t.Helper()
	req := push.PushRequest{Streams: []push.Stream{{
		Labels: `{service="harness", kind="probe_failure"}`,
		Entries: []push.Entry{{
			Timestamp:          ts,
			Line:               line,
			StructuredMetadata: push.LabelsAdapter{{Name: "probe", Value: "mnl-01"}},
		}},
	}}}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push: HTTP %d, want 204", resp.StatusCode)
	}
}

func TestServerKeepsDataAcrossRestart(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ts := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	pushOne(t, s.PushURL(), ts, `{"message":"first","target":"1.1.1.1:443"}`)

	rows, err := s.Query(ctx, `service:harness`)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("got %d rows, want 1: %v\nserver log:\n%s", len(rows), rows, s.Logs())
	}
	row := rows[0]
	for k, want := range map[string]string{
		"service": "harness", "kind": "probe_failure", "probe": "mnl-01",
		"message": "first", "target": "1.1.1.1:443",
	} {
		if got, _ := row[k].(string); got != want {
			t.Errorf("field %q = %q, want %q (row %v)", k, got, want, row)
		}
	}

	s.Stop(t)
	if _, err := s.Query(ctx, `*`); err == nil {
		t.Fatal("query succeeded while the server was stopped")
	}
	s.Restart(t)
	rows, err = s.Query(ctx, `service:harness`)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("after restart got %d rows, want the 1 stored before: %v", len(rows), rows)
	}
}

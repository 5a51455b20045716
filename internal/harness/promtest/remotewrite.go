package promtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Series is one series to remote-write: its labels (including __name__) and
// samples in time order.
type Series struct {
	Labels  map[string]string
	Samples []Sample
}

// Sample is one float sample.
type Sample struct {
	T time.Time
	V float64
}

// RemoteWrite sends series to a Prometheus remote-write 1.0 receiver (such as
// Prometheus's /api/v1/write) in one request: protobuf, snappy-compressed.
func RemoteWrite(ctx context.Context, url string, series []Series) error {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(series))}
	for _, s := range series {
		ts := prompb.TimeSeries{Labels: make([]prompb.Label, 0, len(s.Labels))}
		for k, v := range s.Labels {
			ts.Labels = append(ts.Labels, prompb.Label{Name: k, Value: v})
		}
		// The protocol requires labels sorted by name.
		sort.Slice(ts.Labels, func(i, j int) bool { return ts.Labels[i].Name < ts.Labels[j].Name })
		for _, p := range s.Samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: p.T.UnixMilli(), Value: p.V})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	raw, err := req.Marshal()
	if err != nil {
		return fmt.Errorf("remote write: marshal: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("remote write %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("remote write %s: HTTP %d: %s", url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

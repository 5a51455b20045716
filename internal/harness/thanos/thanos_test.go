package thanos

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// What is remote-written to receive is answered by query, with receive's
// replica label added.
func TestRemoteWrittenSeriesIsQueryable(t *testing.T) {
	testenv.LongTest(t, "Thanos receive + query")
	th := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	now := time.Now().Truncate(time.Millisecond)
	series := []promtest.Series{{
		Labels:  map[string]string{"__name__": "harness_probe", "bantay_shard": "shard-0"},
		Samples: []promtest.Sample{{T: now, V: 42}},
	}}
	if err := promtest.RemoteWrite(ctx, th.RemoteWriteURL(), series); err != nil {
		t.Fatalf("remote write: %v\n%s", err, th.Logs())
	}
	api, err := otlpload.NewAPI(th.QueryURL(), "")
	if err != nil {
		t.Fatal(err)
	}
	// Query skips a store whose advertised time range does not cover the
	// query; an empty receive's is updated at query's next endpoint check
	// (every 5 s), so the sample shows within a few seconds, not at once.
	var vec model.Vector
	for range 60 {
		v, _, _, err := api.Query(ctx, `harness_probe`, now)
		if err != nil {
			t.Fatalf("query: %v\n%s", err, th.Logs())
		}
		if vec = v.(model.Vector); len(vec) > 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(vec) != 1 || vec[0].Value != 42 || vec[0].Metric["bantay_shard"] != "shard-0" || vec[0].Metric["receive_replica"] != "0" {
		t.Fatalf("query harness_probe = %v, want one sample 42 with bantay_shard=shard-0, receive_replica=0", vec)
	}
}

package collector_test

import (
	"context"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
	"github.com/bantay-noc/bantay/internal/harness/promtest"
	"github.com/bantay-noc/bantay/internal/harness/slowfs"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// commitHistogram is bantay_store_commit_duration_seconds as the bantay
// extension exposes it: cumulative counts by upper bound, count and sum.
type commitHistogram struct {
	buckets map[float64]uint64
	count   uint64
	sum     float64
}

func scrapeCommits(t *testing.T, addr string) commitHistogram {
	t.Helper()
	fam := scrapeFamily(t, addr, "bantay_store_commit_duration_seconds")
	if fam == nil || len(fam.GetMetric()) != 1 {
		t.Fatalf("bantay_store_commit_duration_seconds: want one histogram, got %v", fam)
	}
	h := fam.GetMetric()[0].GetHistogram()
	out := commitHistogram{buckets: map[float64]uint64{}, count: h.GetSampleCount(), sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		out.buckets[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	return out
}

// since is what h counted after before.
func (h commitHistogram) since(before commitHistogram) commitHistogram {
	d := commitHistogram{buckets: map[float64]uint64{}, count: h.count - before.count, sum: h.sum - before.sum}
	for le, n := range h.buckets {
		d.buckets[le] = n - before.buckets[le]
	}
	return d
}

// above counts the commits slower than le (a bucket bound).
func (h commitHistogram) above(le float64) uint64 { return h.count - h.buckets[le] }

// p99 is the bucket bound the 99th percentile commit lies under (+Inf
// beyond the last bound): what histogram_quantile interpolates within.
func (h commitHistogram) p99() float64 {
	bounds := slices.Sorted(func(yield func(float64) bool) {
		for le := range h.buckets {
			if !yield(le) {
				return
			}
		}
	})
	for _, le := range bounds {
		if float64(h.buckets[le]) >= 0.99*float64(h.count) {
			return le
		}
	}
	return math.Inf(1)
}

// slowDiskPhase is a delay on every write and fsync of the data
// directory, and what the load saw meanwhile.
type slowDiskPhase struct {
	name     string
	delay    time.Duration
	duration time.Duration
	// slowerThan is a bucket bound some commits of the phase must exceed.
	slowerThan float64
	// saturated: the store must spend more than half of the phase
	// committing (BantayStoreWALSlow's threshold). Only where the phase
	// holds many commits: the histogram counts a commit when it ends, so
	// in a window of a few long commits its edges decide the share.
	saturated bool

	start    time.Time
	acked    otlpload.Lags // answer times of acknowledged requests
	refused  map[codes.Code]int
	timedOut int // requests the sender gave up on (the probe's export timeout)
	commits  commitHistogram
	ready    int           // /-/ready in the middle of the phase
	query    time.Duration // a query over everything stored, meanwhile
}

// TestSlowDiskIsRefusedRetryablyAndNothingAckedIsLost runs the real
// collector with its data directory on slowfs while six uplinks send
// (one request of 10 points each every 200 ms at most); every write and
// fsync of the disk is held for 0, 200 ms, 2 s, then 0 again. A slow disk
// is not a failed one: the store stays writable and ready, queries answer,
// the commit time shows in bantay_store_commit_duration_seconds, requests
// beyond the append slots are refused retryably (RESOURCE_EXHAUSTED, after
// append_wait), every acknowledged point is stored, and once the disk is
// fast again ingest is refused no more.
func TestSlowDiskIsRefusedRetryablyAndNothingAckedIsLost(t *testing.T) {
	testenv.LongTest(t, "builds and runs the collector binary on a FUSE file system")
	disk := slowfs.Mount(t) // unmounted after the collector is killed
	in := newInstanceAt(t, filepath.Join(disk.Dir, "data"), "")
	in.start()
	api := promtest.NewClient("http://" + in.httpAddr)

	phases := []*slowDiskPhase{
		{name: "no delay", duration: 5 * time.Second},
		{name: "200 ms", delay: 200 * time.Millisecond, duration: 10 * time.Second, slowerThan: .1, saturated: true},
		{name: "2 s", delay: 2 * time.Second, duration: 20 * time.Second, slowerThan: 1},
		{name: "back to 0", duration: 10 * time.Second},
	}
	for _, p := range phases {
		p.refused = map[codes.Code]int{}
	}
	// A request held behind the 2 s writes may wait out append_wait (2 s)
	// after the delay is lifted, or its 10 s timeout; answers this long
	// after are of requests that met a fast disk, and none is refused.
	const settle = 3 * time.Second
	var (
		mu        sync.Mutex
		unsettled = map[codes.Code]int{} // refusals in the last phase's settle time
		// A phase's figures are of the answers given while it lasted: what a
		// NOC sees on the collector meanwhile.
		phaseOf = func(answered time.Time) *slowDiskPhase {
			for i := len(phases) - 1; i >= 0; i-- {
				if !phases[i].start.IsZero() && !answered.Before(phases[i].start) {
					return phases[i]
				}
			}
			return phases[0]
		}
	)
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	load := in.load()
	load.Workers, load.PointsPerRequest, load.Pause = 6, 10, 200*time.Millisecond
	// The probe's default export timeout: a probe gives up on a request
	// not answered by then, keeps its data and sends it again later.
	load.MaxRequests, load.Duration, load.Timeout = 5000, 2*time.Minute, 10*time.Second
	load.OnAnswer = func(sent time.Time, took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		answered := sent.Add(took)
		p := phaseOf(answered)
		switch {
		case err == nil:
			p.acked.Add(took)
		case p == phases[len(phases)-1] && answered.Before(p.start.Add(settle)):
			unsettled[status.Code(err)]++
		case status.Code(err) == codes.DeadlineExceeded && ctx.Err() == nil:
			p.timedOut++
		default:
			p.refused[status.Code(err)]++
		}
	}
	done := make(chan otlpload.Result, 1)
	go func() {
		res, err := otlpload.Run(ctx, load)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()

	before := scrapeCommits(t, in.httpAddr)
	for _, p := range phases {
		disk.SetDelay(p.delay)
		mu.Lock()
		p.start = time.Now()
		mu.Unlock()
		time.Sleep(p.duration / 2)
		resp, err := http.Get("http://" + in.httpAddr + "/-/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		p.ready = resp.StatusCode
		qctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		asked := time.Now()
		res, err := api.Query(qctx, `count(network_latency_milliseconds_count{target=~"load-.*"})`, time.Time{})
		cancel()
		p.query = time.Since(asked)
		if err != nil || res.Len() != 1 {
			t.Errorf("%s: a query while the disk is slow: %v (%d series)", p.name, err, res.Len())
		}
		time.Sleep(p.duration - p.duration/2)
		after := scrapeCommits(t, in.httpAddr)
		p.commits, before = after.since(before), after
	}
	stopLoad()
	res := <-done

	held := disk.Delayed()
	t.Logf("%d requests, %d points acknowledged; slowfs held %d writes and %d fsyncs", res.Requests, len(res.Acked), held.Writes, held.Fsyncs)
	overloaded := scrapeCounter(t, in.httpAddr, "bantay_store_rejected_requests_total", "reason")["overloaded"]
	seen := 0
	for _, p := range phases {
		lat := p.acked.Summary()
		// What BantayStoreWALSlow watches: commits are one at a time, so
		// their summed time over the phase's is the share spent committing.
		share := p.commits.sum / p.duration.Seconds()
		t.Logf("%-9s acked %4d requests, answer p50 %.3f s p99 %.3f s max %.3f s; refused %v; timed out %d; commits %d, p99 ≤ %g s, mean %.3f s, share of time %.2f; ready %d; query %v",
			p.name, lat.Samples, lat.P50, lat.P99, lat.Max, p.refused, p.timedOut, p.commits.count, p.commits.p99(),
			p.commits.sum/float64(max(p.commits.count, 1)), share, p.ready, p.query.Round(time.Millisecond))
		// At 2 s a write, a commit of new series takes 6–8 s and waits
		// behind others, so it may outlast the probe's 10 s timeout: that
		// phase may acknowledge nothing (CI saw none in one run, two in
		// another), as long as what it refuses is refused retryably.
		if lat.Samples == 0 && p.delay < time.Second {
			t.Errorf("%s: nothing acknowledged", p.name)
		}
		if p.ready != http.StatusOK {
			t.Errorf("%s: /-/ready answered %d: a slow disk still writes, so the store stays ready", p.name, p.ready)
		}
		if p.delay == 0 && p.timedOut > 0 {
			t.Errorf("%s: %d requests unanswered within the probe's %v timeout on a fast disk", p.name, p.timedOut, load.Timeout)
		}
		if p.slowerThan > 0 && p.commits.above(p.slowerThan) == 0 {
			t.Errorf("%s: no commit slower than %g s in bantay_store_commit_duration_seconds", p.name, p.slowerThan)
		}
		if p.saturated && share <= 0.5 {
			t.Errorf("%s: the store spent %.2f of the time committing, want above BantayStoreWALSlow's 0.5: more requests wait than the disk can commit", p.name, share)
		}
		for code, n := range p.refused {
			switch code {
			case codes.ResourceExhausted:
				seen += n
			case codes.Unavailable, codes.Canceled: // a request cancelled before its commit; the load's own stop
			default:
				t.Errorf("%s: %d answers %v: only retryable refusals are acceptable", p.name, n, code)
			}
		}
	}
	if phases[2].refused[codes.ResourceExhausted] == 0 {
		t.Errorf("with 2 s writes no request was refused for overload: six uplinks need more than the four append slots")
	}
	if float64(seen) > overloaded {
		t.Errorf("the load saw %d RESOURCE_EXHAUSTED, bantay_store_rejected_requests_total{reason=overloaded} says %v", seen, overloaded)
	}
	last := phases[len(phases)-1]
	t.Logf("back to 0: %v refused within %v of the delay lifted", unsettled, settle)
	for code, n := range last.refused {
		if code != codes.Canceled { // the load's own stop
			t.Errorf("%s: %d answers %v more than %v after the disk was fast again: ingest did not recover", last.name, n, code, settle)
		}
	}

	stored := in.storedTargets(context.Background())
	missing := 0
	for _, target := range res.Acked {
		if !stored[target] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged points are not stored", missing, len(res.Acked))
	}
	if log := in.logs[0].String(); strings.Contains(log, "store cannot write its WAL") {
		t.Errorf("the slow disk made the store unwritable:\n%s", log)
	}
}

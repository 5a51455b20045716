// Command heatmapload measures the heatmap's websocket fan-out with the
// clients in a separate process, as docs/heatmap.md and the issue's
// benchmark ask (one process cannot hold 10,000 client and 10,000 server
// sockets under the 20,000 file limit, and the client work must not be
// billed to the server), and the freshness of what the wall shows.
//
//	heatmapload serve   -addr 127.0.0.1:8099 -cells 1000 [-hub naive]
//	heatmapload clients -url ws://127.0.0.1:8099/ws -n 10000 -duration 60s
//	heatmapload freshness -interval 5s -duration 3m
//
// serve -hub naive serves the same frames through the peer the hub is
// measured against, the textbook per-client fan-out (naive.go).
// freshness runs the demo's real pipeline with a stamping target and
// reports probe measurement → websocket frame (freshness.go).
//
// serve runs a Heatmap fed with synthetic probe data (each cell gets a
// point every resolution, spread over the interval, so about cells/15
// cells change per second) and prints, every -report, the connections, its
// CPU use and RSS, and RSS per connection above the baseline of the last
// report without connections (so start the clients after the first report).
// clients opens n connections (at -rate per second), reads every frame and
// prints the delivery lag of delta frames (receive time minus the frame's
// "time", the moment the server's tick began; same clock, same machine):
// p50, p99, max.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/bantay-noc/bantay/heatmap"
	"github.com/bantay-noc/bantay/heatmap/aggregate"
	"github.com/bantay-noc/bantay/heatmap/hub"
	"github.com/bantay-noc/bantay/heatmap/pathstate"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: heatmapload serve|clients|freshness [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "clients":
		clients(os.Args[2:])
	case "freshness":
		freshness(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "heatmapload: unknown mode %q (want serve, clients or freshness)\n", os.Args[1])
		os.Exit(2)
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8099", "listen address (loopback only)")
	cells := fs.Int("cells", 1000, "number of cells fed")
	report := fs.Duration("report", 10*time.Second, "report interval")
	duration := fs.Duration("duration", 0, "stop after this long (0 = until killed)")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof (with mutex and block profiles) on this loopback address")
	hubKind := fs.String("hub", "bantay", "bantay (the real hub) or naive (the peer: a channel and writer goroutine per client, every frame written per client; see naive.go)")
	_ = fs.Parse(args)
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-addr %q: must be a loopback address", *addr)
	}
	if *pprofAddr != "" {
		if !strings.HasPrefix(*pprofAddr, "127.") {
			log.Fatalf("-pprof %q: must be a loopback address", *pprofAddr)
		}
		runtime.SetMutexProfileFraction(100)
		runtime.SetBlockProfileRate(int(time.Millisecond))
		go func() { log.Print(http.ListenAndServe(*pprofAddr, nil)) }() //nolint:gosec // a load tool on loopback
	}
	reg := prometheus.NewRegistry()
	h, err := heatmap.New(heatmap.Config{Hub: hub.Config{MaxConnections: 20000}}, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	if err := h.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	handler, conns, lagMetric := h.Handler(), h.Connections, "bantay_heatmap_ws_delivery_lag_seconds"
	var naive *naiveHub
	switch *hubKind {
	case "bantay":
	case "naive":
		if naive, err = startNaive(h, reg); err != nil {
			log.Fatal(err)
		}
		handler, conns, lagMetric = naive, naive.count, naiveLagMetric
	default:
		log.Fatalf("-hub %q: want bantay or naive", *hubKind)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("serving %d cells on ws://%s/ws with the %s hub\n", *cells, ln.Addr(), *hubKind)

	go feed(h, *cells, h.Config().Aggregation.Resolution)

	var stop <-chan time.Time
	if *duration > 0 {
		stop = time.After(*duration)
	}
	base := rssBytes()
	lastCPU, lastWall := cpuTime(), time.Now()
	var lastDelivered uint64
	t := time.NewTicker(*report)
	defer t.Stop()
	for {
		select {
		case <-stop:
			_ = srv.Close()
			return
		case now := <-t.C:
			cpu := cpuTime()
			conns := conns()
			rss := rssBytes()
			if conns == 0 {
				// The idle baseline: cells fed, nobody connected yet.
				base = rss
			}
			perConn := "-"
			if conns > 0 {
				perConn = strconv.FormatFloat(float64(rss-base)/float64(conns)/1024, 'f', 1, 64) + " KiB"
			}
			p50, p99, delivered := lagQuantiles(reg, lagMetric)
			hop := ""
			if naive != nil {
				h50, h99, _ := lagQuantiles(reg, naiveHopMetric)
				hop = fmt.Sprintf(" upstream-hop p50<=%s p99<=%s", h50, h99)
			}
			// CPU per delta delivered: what the fan-out costs, whatever
			// share of the machine the process got.
			perDelivery := "-"
			if d := delivered - lastDelivered; d > 0 {
				perDelivery = fmt.Sprintf("%.1fµs", float64((cpu-lastCPU).Microseconds())/float64(d))
			}
			fmt.Printf("%s conns=%d cpu=%.1f%% rss=%.1f MiB rss/conn=%s deltas=%d cpu/delta=%s write-lag(cumulative) p50<=%s p99<=%s%s\n", now.Format(time.TimeOnly), conns,
				100*(cpu-lastCPU).Seconds()/now.Sub(lastWall).Seconds(), float64(rss)/(1<<20), perConn, delivered-lastDelivered, perDelivery, p50, p99, hop)
			lastCPU, lastWall, lastDelivered = cpu, now, delivered
		}
	}
}

// feed sends each cell a cumulative histogram point once per resolution,
// spread evenly, like probes on a 15 s schedule.
func feed(h *heatmap.Heatmap, n int, res time.Duration) {
	carriers := []string{"Globe", "Smart", "DITO", "PLDT", "Converge"}
	type cell struct {
		key    pathstate.CellKey
		stream []byte
		counts []uint64
		sum    float64
	}
	cs := make([]cell, n)
	start := time.Now()
	for i := range cs {
		k := pathstate.CellKey{SrcCity: "Src" + strconv.Itoa(i/100), DstCity: "Dst" + strconv.Itoa(i%100), Carrier: carriers[i%5], NetworkType: "4g"}
		cs[i] = cell{key: k, stream: aggregate.AppendStreamKey(nil, aggregate.KindLatency, "load", []aggregate.Label{{Name: "cell", Value: k.ID()}}),
			counts: make([]uint64, len(aggregate.DefaultBounds)+1)}
	}
	step := res / time.Duration(n)
	if step <= 0 {
		step = time.Microsecond
	}
	t := time.NewTicker(max(step, time.Millisecond))
	defer t.Stop()
	i := 0
	for now := range t.C {
		// Catch up on every cell due since the last tick.
		for due := int(now.Sub(start) / step); i < due; i++ {
			c := &cs[i%n]
			b := 8 + i%7
			c.counts[b] += 10
			c.sum += 10 * aggregate.DefaultBounds[b]
			h.Observe(&aggregate.Point{Kind: aggregate.KindLatency, Stream: c.stream, Cell: c.key, Start: start, Time: now,
				Bounds: aggregate.DefaultBounds, Counts: c.counts, Sum: c.sum})
		}
	}
}

// lagQuantiles reads the histogram named (bantay_heatmap_ws_delivery_lag_seconds
// for the real hub) and returns the upper bounds of the buckets holding its
// p50 and p99: the server's share of the delivery lag (tick start until the
// frame is in the socket), and its count, the delta frames delivered.
func lagQuantiles(g prometheus.Gatherer, name string) (string, string, uint64) {
	mfs, err := g.Gather()
	if err != nil {
		return "?", "?", 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		hist := mf.GetMetric()[0].GetHistogram()
		n := float64(hist.GetSampleCount())
		at := func(q float64) string {
			for _, b := range hist.GetBucket() {
				if float64(b.GetCumulativeCount()) >= q*n {
					return (time.Duration(b.GetUpperBound() * float64(time.Second))).String()
				}
			}
			return "+Inf"
		}
		if n == 0 {
			return "-", "-", 0
		}
		return at(0.5), at(0.99), hist.GetSampleCount()
	}
	return "-", "-", 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func clients(args []string) {
	fs := flag.NewFlagSet("clients", flag.ExitOnError)
	url := fs.String("url", "ws://127.0.0.1:8099/ws", "websocket URL (loopback only)")
	n := fs.Int("n", 1000, "number of clients")
	perSecond := fs.Int("rate", 1000, "connections opened per second")
	duration := fs.Duration("duration", 60*time.Second, "measure for this long after all are connected")
	compress := fs.Bool("compress", true, "offer permessage-deflate, as browsers do")
	_ = fs.Parse(args)
	if !strings.HasPrefix(*url, "ws://127.") {
		log.Fatalf("-url %q: must be ws:// on a loopback address", *url)
	}
	var lags lagHist
	var frames, drops atomic.Int64
	var measuring atomic.Bool
	var wg sync.WaitGroup
	d := websocket.Dialer{EnableCompression: *compress, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 4096}
	pace := rate.NewLimiter(rate.Limit(max(*perSecond, 1)), 1)
	conns := make([]*websocket.Conn, 0, *n)
	for range *n {
		if err := pace.Wait(context.Background()); err != nil {
			log.Fatal(err) // only with a deadline, which Background has not
		}
		c, _, err := d.Dial(*url, nil)
		if err != nil {
			log.Fatalf("dial after %d clients: %v", len(conns), err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Only a frame's head is looked at (type and time come first);
			// the rest is read into a shared discard buffer, so that 10,000
			// readers do not allocate every frame and the tool's own CPU
			// stays small beside the server it shares the machine with.
			var head [128]byte
			for {
				_, r, err := c.NextReader()
				if err == nil {
					var n int
					n, err = io.ReadFull(r, head[:])
					if err == io.ErrUnexpectedEOF || err == io.EOF {
						err = nil
					}
					at := time.Now()
					if err == nil {
						_, err = io.Copy(io.Discard, r)
					}
					if err == nil && measuring.Load() && isDelta(head[:n]) {
						frames.Add(1)
						if ms, ok := frameTime(head[:n]); ok {
							lags.add(at.UnixMilli() - ms)
						}
					}
				}
				if err != nil {
					if measuring.Load() {
						drops.Add(1)
					}
					return
				}
			}
		}()
	}
	fmt.Printf("%d clients connected; measuring for %v\n", len(conns), *duration)
	measuring.Store(true)
	time.Sleep(*duration)
	measuring.Store(false)
	p50, p99, maxLag := lags.quantile(0.5), lags.quantile(0.99), lags.max()
	fmt.Printf("clients=%d delta frames=%d lag p50=%dms p99=%dms max=%dms disconnected=%d\n",
		len(conns), frames.Load(), p50, p99, maxLag, drops.Load())
	for _, c := range conns {
		_ = c.Close()
	}
	wg.Wait()
}

// isDelta tells a delta frame from the others by its head, {"v":1,"type":"delta".
func isDelta(data []byte) bool {
	return bytes.Contains(data[:min(len(data), 40)], []byte(`"type":"delta"`))
}

// frameTime finds the frame's "time" (Unix ms) without a full decode.
func frameTime(data []byte) (int64, bool) {
	i := bytes.Index(data, []byte(`"time":`))
	if i < 0 {
		return 0, false
	}
	j := i + len(`"time":`)
	k := j
	for k < len(data) && data[k] >= '0' && data[k] <= '9' {
		k++
	}
	v, err := strconv.ParseInt(string(data[j:k]), 10, 64)
	return v, err == nil
}

// lagHist counts lags in 1 ms buckets up to 60 s (the last bucket takes
// the rest), lock-free.
type lagHist struct {
	b [60001]atomic.Int64
}

func (h *lagHist) add(ms int64) {
	h.b[min(max(ms, 0), int64(len(h.b)-1))].Add(1)
}

func (h *lagHist) total() int64 {
	var n int64
	for i := range h.b {
		n += h.b[i].Load()
	}
	return n
}

// quantile returns the smallest lag (ms) with at least q of the samples at or below it.
func (h *lagHist) quantile(q float64) int64 {
	n := h.total()
	if n == 0 {
		return -1
	}
	rank := int64(math.Ceil(q * float64(n)))
	var cum int64
	for i := range h.b {
		cum += h.b[i].Load()
		if cum >= max(rank, 1) {
			return int64(i)
		}
	}
	return int64(len(h.b) - 1)
}

func (h *lagHist) max() int64 {
	for i := len(h.b) - 1; i >= 0; i-- {
		if h.b[i].Load() > 0 {
			return int64(i)
		}
	}
	return -1
}

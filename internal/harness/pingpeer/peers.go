// Package pingpeer runs the tools Bantay's probers are compared with —
// Debian's fping and prometheus-blackbox-exporter — against a target and
// returns what each measured, one sample per answered probe, so that all of
// them can be held against the same ground truth (internal/harness/tunnet):
// icmp against fping and blackbox's icmp module, tcp, http (each phase) and
// dns against blackbox's tcp, http and dns modules.
package pingpeer

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// Measured is what one tool measured of count packets to a target: the
// answered packets' RTTs in the order the tool reports them, and how many
// it counted as lost.
type Measured struct {
	RTTs []time.Duration
	Lost int
}

// Fping pings target count times, one every period, each answered within
// timeout, with `fping -C count -p period -t timeout -q` (its per-packet
// report, in milliseconds, "-" for a lost packet). fping gives up on a
// reply that takes longer than timeout, and its default timeout is 500 ms.
func Fping(ctx context.Context, bin, target string, count int, period, timeout time.Duration) (Measured, error) {
	cmd := exec.CommandContext(ctx, bin, "-C", strconv.Itoa(count), "-p", strconv.FormatInt(period.Milliseconds(), 10),
		"-t", strconv.FormatInt(timeout.Milliseconds(), 10), "-q", target)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	// fping exits 1 when some packet was lost: that is a measurement, not a
	// failure; its report is what counts.
	line, ok := reportLine(stderr.String(), target)
	if !ok {
		return Measured{}, fmt.Errorf("fping: no report for %s (%v): %s", target, err, stderr.String())
	}
	return parseFping(line, count)
}

func reportLine(out, target string) (string, bool) {
	for l := range strings.Lines(out) {
		if name, rest, ok := strings.Cut(l, " : "); ok && strings.TrimSpace(name) == target {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

// parseFping reads fping -C's per-packet field list: milliseconds with the
// precision fping prints, "-" for a lost packet.
func parseFping(line string, count int) (Measured, error) {
	var m Measured
	fields := strings.Fields(line)
	if len(fields) != count {
		return m, fmt.Errorf("fping: %d results in %q, want %d", len(fields), line, count)
	}
	for _, f := range fields {
		if f == "-" {
			m.Lost++
			continue
		}
		ms, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return m, fmt.Errorf("fping: result %q: %v", f, err)
		}
		m.RTTs = append(m.RTTs, time.Duration(ms*float64(time.Millisecond)))
	}
	return m, nil
}

// Blackbox is a running prometheus-blackbox-exporter on a 127.0.0.1 port
// with four modules, all IPv4 only: "icmp" (echo), "tcp" (tcp_connect),
// "http" (GET, certificates not verified, as the prober's
// insecure_skip_verify) and "dns" (UDP, an A query for BlackboxQueryName).
type Blackbox struct {
	url string
}

// BlackboxQueryName is the name the dns module asks for.
const BlackboxQueryName = "www.bantay.test"

// StartBlackbox starts bin with a config the harness writes (the four
// modules, each with timeout) on 127.0.0.1 and waits until it answers; it
// is stopped when the test ends.
func StartBlackbox(t testing.TB, bin string, timeout time.Duration) *Blackbox {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "blackbox.yml")
	body := fmt.Sprintf(`modules:
  icmp:
    prober: icmp
    timeout: %[1]s
    icmp: {preferred_ip_protocol: ip4, ip_protocol_fallback: false}
  tcp:
    prober: tcp
    timeout: %[1]s
    tcp: {preferred_ip_protocol: ip4, ip_protocol_fallback: false}
  http:
    prober: http
    timeout: %[1]s
    http: {preferred_ip_protocol: ip4, ip_protocol_fallback: false, tls_config: {insecure_skip_verify: true}}
  dns:
    prober: dns
    timeout: %[1]s
    dns: {preferred_ip_protocol: ip4, ip_protocol_fallback: false, transport_protocol: udp, query_name: %[2]s, query_type: A}
`, timeout, BlackboxQueryName)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--web.listen-address="+addr)
	log, err := os.Create(filepath.Join(dir, "blackbox.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	b := &Blackbox{url: "http://" + addr}
	// Bounded: a blackbox_exporter that has not answered in 10 s will not.
	for range 100 {
		if resp, err := http.Get(b.url + "/-/healthy"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _ := os.ReadFile(log.Name())
	t.Fatalf("blackbox_exporter on %s never became healthy:\n%s", addr, out)
	return nil
}

// Measure takes count probes of target with the icmp module, one started
// every period (as fping and the prober pace theirs). Each is one echo
// request: it answers with its round trip
// (probe_icmp_duration_seconds{phase="rtt"}) or fails (probe_success 0),
// which is a lost packet. RTTs are in the order the probes were started.
func (b *Blackbox) Measure(ctx context.Context, target string, count int, period time.Duration) (Measured, error) {
	answers, lost, err := b.Series(ctx, "icmp", target, count, period)
	m := Measured{Lost: lost}
	if err != nil {
		return m, err
	}
	for _, a := range answers {
		rtt, ok := Gauge(a, "probe_icmp_duration_seconds", "rtt")
		if !ok {
			return m, fmt.Errorf("blackbox icmp %s: no probe_icmp_duration_seconds{phase=\"rtt\"}", target)
		}
		m.RTTs = append(m.RTTs, rtt)
	}
	return m, nil
}

// Series takes count probes of target with module through /probe, one
// started every period (a probe slower than period overlaps the next, as
// Prometheus's scrapes of many targets do), and returns the metric
// families of the successful ones in the order they were started, and how
// many failed (probe_success 0). Blackbox gives one sample per probe, so a
// distribution is count scrapes.
func (b *Blackbox) Series(ctx context.Context, module, target string, count int, period time.Duration) ([]map[string]*dto.MetricFamily, int, error) {
	type outcome struct {
		families map[string]*dto.MetricFamily
		ok       bool
		err      error
	}
	outcomes := make([]outcome, count)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range count {
		time.Sleep(time.Until(start.Add(time.Duration(i) * period)))
		wg.Go(func() {
			f, ok, err := b.probe(ctx, module, target)
			outcomes[i] = outcome{f, ok, err}
		})
	}
	wg.Wait()
	var answers []map[string]*dto.MetricFamily
	lost := 0
	for _, o := range outcomes {
		switch {
		case o.err != nil:
			return nil, 0, o.err
		case o.ok:
			answers = append(answers, o.families)
		default:
			lost++
		}
	}
	return answers, lost, nil
}

func (b *Blackbox) probe(ctx context.Context, module, target string) (map[string]*dto.MetricFamily, bool, error) {
	u := b.url + "/probe?" + url.Values{"module": {module}, "target": {target}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("blackbox %s: %s", u, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, false, fmt.Errorf("blackbox %s: %v", u, err)
	}
	success, ok := gauge(families["probe_success"], "")
	if !ok {
		return nil, false, fmt.Errorf("blackbox %s: no probe_success", u)
	}
	return families, success == 1, nil
}

// Gauge is the gauge name{phase=phase} of one probe's families ("" for a
// series without a phase), in seconds, as a duration.
func Gauge(families map[string]*dto.MetricFamily, name, phase string) (time.Duration, bool) {
	v, ok := gauge(families[name], phase)
	return time.Duration(v * float64(time.Second)), ok
}

// gauge is the value of the family's series whose phase label is phase
// ("" for a series without one).
func gauge(f *dto.MetricFamily, phase string) (float64, bool) {
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		got := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "phase" {
				got = l.GetValue()
			}
		}
		if got == phase && m.GetGauge() != nil {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// Alertmanager is a real Alertmanager started by StartAlertmanager.
type Alertmanager struct {
	// URL is the server root, e.g. "http://127.0.0.1:40125".
	URL        string
	Addr       string
	ConfigFile string
	// Webhook receives every notification when the default configuration is
	// used; nil with a caller-supplied --config.file.
	Webhook *WebhookSink
	proc    *process
	bin     string
	args    []string // the command line, for Restart on the same port
}

// alertmanagerConfig routes every alert, ungrouped and without delay, to one
// webhook, resolved notifications included, so a test sees each firing and
// each resolve as its own notification.
const alertmanagerConfig = `route:
  receiver: webhook
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: %q
        send_resolved: true
`

// StartAlertmanager starts the Debian prometheus-alertmanager binary (or
// $ALERTMANAGER) on a free 127.0.0.1 port with clustering off and a
// temporary storage directory, waits until /-/ready answers and stops it when
// the test ends. Unless args contain --config.file, it is configured to send
// every notification to a WebhookSink (am.Webhook) served on 127.0.0.1.
func StartAlertmanager(t testing.TB, args ...string) *Alertmanager {
	t.Helper()
	bin := testenv.Binary(t, "prometheus-alertmanager", "ALERTMANAGER")
	dir := t.TempDir()
	am := &Alertmanager{}
	if !hasFlag(args, "--config.file") {
		am.Webhook = NewWebhookSink(t)
		am.ConfigFile = filepath.Join(dir, "alertmanager.yml")
		cfg := fmt.Sprintf(alertmanagerConfig, am.Webhook.URL)
		if err := os.WriteFile(am.ConfigFile, []byte(cfg), 0o600); err != nil {
			t.Fatalf("write alertmanager config: %v", err)
		}
		args = append([]string{"--config.file=" + am.ConfigFile}, args...)
	}
	argv := func(addr string) []string {
		return append([]string{
			"--web.listen-address=" + addr,
			"--storage.path=" + filepath.Join(dir, "data"),
			// An empty address turns the gossip cluster off; its default
			// listens on 0.0.0.0:9094.
			"--cluster.listen-address=",
			"--log.level=warn",
		}, args...)
	}
	am.proc = startServer(t, "alertmanager", bin, argv)
	am.Addr, am.URL = am.proc.addr, "http://"+am.proc.addr
	am.bin, am.args = bin, argv(am.Addr)
	return am
}

// Stop stops Alertmanager, keeping its port and storage for Restart:
// notifications fail with connection refused meanwhile, as in an outage.
func (am *Alertmanager) Stop(t testing.TB) {
	t.Helper()
	am.proc.stop(t)
}

// Restart starts the stopped Alertmanager again on the same port and
// storage and waits until it is ready.
func (am *Alertmanager) Restart(t testing.TB) {
	t.Helper()
	proc, err := startProcess(t, "alertmanager", am.bin, am.args)
	if err != nil {
		t.Fatalf("restart alertmanager: %v", err)
	}
	proc.addr = am.Addr
	t.Cleanup(func() { proc.stop(t) })
	if err := waitReady(proc, am.URL+"/-/ready", 60*time.Second); err != nil {
		t.Fatalf("restarted alertmanager: %v", err)
	}
	am.proc = proc
}

// PostableAlert is an alert in the form Alertmanager's v2 API accepts
// (POST /api/v2/alerts), which is what Prometheus's notifier sends.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// PostAlerts sends alerts to the v2 API.
func (am *Alertmanager) PostAlerts(ctx context.Context, alerts []PostableAlert) error {
	body, err := json.Marshal(alerts)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, am.URL+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("POST /api/v2/alerts: HTTP %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// GettableAlert is an alert as Alertmanager's v2 API lists it.
type GettableAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State       string   `json:"state"` // active, suppressed, unprocessed
		InhibitedBy []string `json:"inhibitedBy"`
		SilencedBy  []string `json:"silencedBy"`
	} `json:"status"`
}

// Alerts lists the alerts Alertmanager currently holds (GET /api/v2/alerts);
// resolved alerts are not listed.
func (am *Alertmanager) Alerts(ctx context.Context) ([]GettableAlert, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, am.URL+"/api/v2/alerts", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v2/alerts: HTTP %d", resp.StatusCode)
	}
	var out []GettableAlert
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&out); err != nil {
		return nil, fmt.Errorf("GET /api/v2/alerts: decode: %w", err)
	}
	return out, nil
}

// WebhookMessage is the body of an Alertmanager webhook notification
// (version 4).
type WebhookMessage struct {
	Version     string            `json:"version"`
	Status      string            `json:"status"` // firing or resolved
	Receiver    string            `json:"receiver"`
	GroupLabels map[string]string `json:"groupLabels"`
	Alerts      []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert in a webhook notification.
type WebhookAlert struct {
	Status       string            `json:"status"` // firing or resolved
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// WebhookSink is an HTTP server on 127.0.0.1 that records the webhook
// notifications Alertmanager sends it.
type WebhookSink struct {
	URL string

	mu       sync.Mutex
	messages []WebhookMessage
	changed  chan struct{} // closed and replaced on every message
	bad      []error
}

// maxWebhookMessages bounds what a misbehaving sender can make a test hold.
const maxWebhookMessages = 10000

// NewWebhookSink starts a sink that is closed when the test ends.
func NewWebhookSink(t testing.TB) *WebhookSink {
	s := &WebhookSink{changed: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, err := range s.bad {
			t.Errorf("webhook sink: %v", err)
		}
	})
	s.URL = srv.URL + "/"
	return s
}

func (s *WebhookSink) serveHTTP(w http.ResponseWriter, r *http.Request) {
	var m WebhookMessage
	err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&m)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bad = append(s.bad, fmt.Errorf("undecodable notification: %w", err))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(s.messages) >= maxWebhookMessages {
		s.bad = append(s.bad, fmt.Errorf("more than %d notifications", maxWebhookMessages))
		http.Error(w, "too many notifications", http.StatusTooManyRequests)
		return
	}
	s.messages = append(s.messages, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

// Messages returns the notifications received so far.
func (s *WebhookSink) Messages() []WebhookMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]WebhookMessage(nil), s.messages...)
}

// WaitFor blocks until a received alert satisfies match (checking those
// already received first) and returns it, or returns ctx's error.
func (s *WebhookSink) WaitFor(ctx context.Context, match func(WebhookAlert) bool) (WebhookAlert, error) {
	seen := 0
	for {
		s.mu.Lock()
		msgs, changed := s.messages[seen:], s.changed
		seen = len(s.messages)
		s.mu.Unlock()
		for _, m := range msgs {
			for _, a := range m.Alerts {
				if match(a) {
					return a, nil
				}
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return WebhookAlert{}, fmt.Errorf("%w: %w", errNoNotification, ctx.Err())
		}
	}
}

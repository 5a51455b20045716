package victorialogs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/harness/modbuild"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
)

// startTimeout bounds how long a start may take; VictoriaLogs is usually
// healthy in about 3 s, the margin is for a loaded 2-core machine.
const startTimeout = 60 * time.Second

// Server is one running (or stopped) VictoriaLogs process on 127.0.0.1,
// with its data directory kept across Stop and Restart so that an outage
// can be simulated without losing what was stored.
type Server struct {
	bin     string
	addr    string
	dataDir string
	client  *http.Client

	mu  sync.Mutex
	cmd *exec.Cmd
	out *modbuild.Output
	// exited is closed when the current process has exited.
	exited chan struct{}
}

// Start builds (once) and starts VictoriaLogs with a fresh data directory
// on a free loopback port, waits until /health answers, and stops it when
// the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		bin:     Binary(t),
		addr:    testenv.FreeAddr(t),
		dataDir: t.TempDir(),
		client:  &http.Client{Timeout: 30 * time.Second},
	}
	t.Cleanup(func() { s.stop() })
	if err := s.start(); err != nil {
		t.Fatalf("start VictoriaLogs: %v", err)
	}
	return s
}

// Addr is the host:port VictoriaLogs listens on.
func (s *Server) Addr() string { return s.addr }

// URL is the base URL of the server, e.g. http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.addr }

// PushURL is the full URL of VictoriaLogs' Loki-compatible push endpoint,
// http://127.0.0.1:PORT/insert/loki/api/v1/push. Grafana Loki serves the
// same API at /loki/api/v1/push; the exporter accepts either form.
func (s *Server) PushURL() string { return s.URL() + "/insert/loki/api/v1/push" }

// DataDir is the storage directory, kept across Stop and Restart.
func (s *Server) DataDir() string { return s.dataDir }

// Logs returns what the process printed so far, for failure messages.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

func (s *Server) start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return fmt.Errorf("VictoriaLogs already running at %s", s.addr)
	}
	out := &modbuild.Output{}
	cmd := exec.Command(s.bin,
		"-storageDataPath="+s.dataDir,
		"-httpListenAddr="+s.addr,
		// Events in tests carry current timestamps; keep them all.
		"-retentionPeriod=100y",
		"-loggerLevel=WARN",
	)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.out, s.exited = cmd, out, exited
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("VictoriaLogs exited during start: %s", modbuild.Tail(out.String(), 2000))
		default:
		}
		if s.healthy() {
			return nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("VictoriaLogs not healthy at %s after %s: %s", s.addr, startTimeout, modbuild.Tail(out.String(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop terminates the process gracefully (SIGTERM makes VictoriaLogs flush
// its in-memory parts to disk), killing it if it does not exit in time.
func (s *Server) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Stop stops the server, keeping its data directory and port for Restart.
// Pushes fail with connection refused until then, as in a real outage.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop()
}

// Restart starts the server again on the same port and data directory.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("restart VictoriaLogs: %v", err)
	}
}

// Flush makes everything ingested so far visible to queries, instead of
// waiting for VictoriaLogs' periodic flush of in-memory data.
func (s *Server) Flush(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/internal/force_flush", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("force flush: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("force flush: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// Query runs a LogsQL query over the default tenant and returns one map per
// matching log entry (the fields as VictoriaLogs returns them: _time, _msg,
// _stream, the stream labels, structured metadata and the fields parsed
// from a JSON line). It flushes first so that recent pushes are included.
func (s *Server) Query(ctx context.Context, logsql string) ([]map[string]any, error) {
	return s.QueryTenant(ctx, "", logsql)
}

// QueryTenant is Query for a tenant given as VictoriaLogs' AccountID (what
// a Loki X-Scope-OrgID header with a numeric value maps to); "" is the
// default tenant.
func (s *Server) QueryTenant(ctx context.Context, accountID, logsql string) ([]map[string]any, error) {
	if err := s.Flush(ctx); err != nil {
		return nil, err
	}
	form := url.Values{"query": {logsql}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/select/logsql/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if accountID != "" {
		req.Header.Set("AccountID", accountID)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", logsql, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("query %q: HTTP %d: %s", logsql, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// The response is JSON lines, one object per entry.
	var rows []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var row map[string]any
		if err := json.Unmarshal(line, &row); err != nil {
			return nil, fmt.Errorf("query %q: decode row %q: %w", logsql, modbuild.Tail(string(line), 200), err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("query %q: read response: %w", logsql, err)
	}
	return rows, nil
}

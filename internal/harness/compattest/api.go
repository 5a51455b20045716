package compattest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// RuleGroup is one group of GET /api/v1/rules.
type RuleGroup struct {
	Name     string  `json:"name"`
	File     string  `json:"file"`
	Interval float64 `json:"interval"`
	Rules    []Rule  `json:"rules"`
}

// Rule is one alerting or recording rule of GET /api/v1/rules.
type Rule struct {
	Type        string            `json:"type"` // alerting or recording
	Name        string            `json:"name"`
	Query       string            `json:"query"`
	Duration    float64           `json:"duration"` // for:, in seconds
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // alerting rules: inactive, pending, firing
	Health      string            `json:"health"`
	LastError   string            `json:"lastError"`
	Alerts      []Alert           `json:"alerts"`
}

// Alert is one active alert of GET /api/v1/alerts (and of an alerting
// rule in /api/v1/rules).
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
	ActiveAt    *time.Time        `json:"activeAt"`
	Value       string            `json:"value"`
}

// Rules fetches GET /api/v1/rules from the Prometheus-compatible API at
// baseURL.
func Rules(ctx context.Context, baseURL string) ([]RuleGroup, error) {
	var data struct {
		Groups []RuleGroup `json:"groups"`
	}
	if err := getData(ctx, baseURL, "/api/v1/rules", &data); err != nil {
		return nil, err
	}
	return data.Groups, nil
}

// Alerts fetches GET /api/v1/alerts from the Prometheus-compatible API at
// baseURL.
func Alerts(ctx context.Context, baseURL string) ([]Alert, error) {
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	if err := getData(ctx, baseURL, "/api/v1/alerts", &data); err != nil {
		return nil, err
	}
	return data.Alerts, nil
}

// Reload asks the server at baseURL to re-read its configuration and rule
// files (POST /-/reload, as Prometheus with --web.enable-lifecycle).
func Reload(ctx context.Context, baseURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST /-/reload: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("POST /-/reload: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}

// maxAPIResponse bounds what one rules or alerts answer may occupy.
const maxAPIResponse = 32 << 20

func getData(ctx context.Context, baseURL, path string, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAPIResponse)).Decode(&body); err != nil {
		return fmt.Errorf("GET %s: HTTP %d, undecodable answer: %w", path, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || body.Status != "success" {
		return fmt.Errorf("GET %s: HTTP %d %s: %s", path, resp.StatusCode, body.Status, body.Error)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		return fmt.Errorf("GET %s: decode data: %w", path, err)
	}
	return nil
}

// FindRule returns the named rule of the named group, if loaded.
func FindRule(groups []RuleGroup, group, name string) (Rule, bool) {
	for _, g := range groups {
		if g.Name != group {
			continue
		}
		for _, r := range g.Rules {
			if r.Name == name {
				return r, true
			}
		}
	}
	return Rule{}, false
}

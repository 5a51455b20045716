package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Client calls the Prometheus HTTP API (/api/v1/…) of Prometheus, Bantay or
// any compatible store, the way Grafana's Prometheus data source does:
// form-encoded POST for query, query_range, series and labels, GET for label
// values.
type Client struct {
	// BaseURL is the server root, e.g. "http://127.0.0.1:9090" (without /api/v1).
	BaseURL string
	// HTTP is the client used for requests; http.DefaultClient when nil.
	HTTP *http.Client
}

// NewClient returns a client for the API at baseURL.
func NewClient(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Result is a parsed query answer.
type Result struct {
	// Value is a model.Vector, model.Matrix, *model.Scalar or *model.String.
	Value    model.Value
	Warnings []string
	Infos    []string
}

// Vector returns the result as an instant vector, or an error naming the
// actual type.
func (r Result) Vector() (model.Vector, error) {
	v, ok := r.Value.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("result is %s, not vector", typeOf(r.Value))
	}
	return v, nil
}

// Matrix returns the result as a range vector, or an error naming the actual
// type.
func (r Result) Matrix() (model.Matrix, error) {
	m, ok := r.Value.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("result is %s, not matrix", typeOf(r.Value))
	}
	return m, nil
}

// Len is the number of series (or 1 for a scalar or string) in the result.
func (r Result) Len() int {
	switch v := r.Value.(type) {
	case model.Vector:
		return len(v)
	case model.Matrix:
		return len(v)
	case nil:
		return 0
	default:
		return 1
	}
}

func typeOf(v model.Value) string {
	if v == nil {
		return "empty"
	}
	return v.Type().String()
}

// APIError is an error answer of the API ({"status":"error", …}) or a
// non-2xx response without one.
type APIError struct {
	StatusCode int
	Type       string // errorType: bad_data, execution, timeout, …
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("prometheus API: HTTP %d %s: %s", e.StatusCode, e.Type, e.Message)
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// Query runs an instant query at ts (the server's "now" when ts is zero).
func (c *Client) Query(ctx context.Context, expr string, ts time.Time) (Result, error) {
	form := url.Values{"query": {expr}}
	if !ts.IsZero() {
		form.Set("time", formatTime(ts))
	}
	return c.query(ctx, "/api/v1/query", form)
}

// QueryRange runs a range query from start to end with the given step.
func (c *Client) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (Result, error) {
	form := url.Values{
		"query": {expr},
		"start": {formatTime(start)},
		"end":   {formatTime(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	return c.query(ctx, "/api/v1/query_range", form)
}

func (c *Client) query(ctx context.Context, path string, form url.Values) (Result, error) {
	resp, err := c.do(ctx, http.MethodPost, path, form)
	if err != nil {
		return Result{}, err
	}
	var d queryData
	if err := json.Unmarshal(resp.Data, &d); err != nil {
		return Result{}, fmt.Errorf("%s: decode data: %w", path, err)
	}
	res := Result{Warnings: resp.Warnings, Infos: resp.Infos}
	switch d.ResultType {
	case "vector":
		var v model.Vector
		err = json.Unmarshal(d.Result, &v)
		res.Value = v
	case "matrix":
		var m model.Matrix
		err = json.Unmarshal(d.Result, &m)
		res.Value = m
	case "scalar":
		var s model.Scalar
		err = json.Unmarshal(d.Result, &s)
		res.Value = &s
	case "string":
		var s model.String
		err = json.Unmarshal(d.Result, &s)
		res.Value = &s
	default:
		return Result{}, fmt.Errorf("%s: unknown resultType %q", path, d.ResultType)
	}
	if err != nil {
		return Result{}, fmt.Errorf("%s: decode %s result: %w", path, d.ResultType, err)
	}
	return res, nil
}

// Series returns the label sets of the series matching any of the selectors
// between start and end (zero times leave the bound to the server).
func (c *Client) Series(ctx context.Context, matchers []string, start, end time.Time) ([]model.LabelSet, error) {
	form := rangeForm(matchers, start, end)
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/series", form)
	if err != nil {
		return nil, err
	}
	var out []model.LabelSet
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return nil, fmt.Errorf("/api/v1/series: decode: %w", err)
	}
	return out, nil
}

// Labels returns the label names, restricted to series matching the
// selectors when any are given.
func (c *Client) Labels(ctx context.Context, matchers []string, start, end time.Time) ([]string, error) {
	resp, err := c.do(ctx, http.MethodPost, "/api/v1/labels", rangeForm(matchers, start, end))
	if err != nil {
		return nil, err
	}
	var out []string
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return nil, fmt.Errorf("/api/v1/labels: decode: %w", err)
	}
	return out, nil
}

// LabelValues returns the values of one label, restricted to series
// matching the selectors when any are given.
func (c *Client) LabelValues(ctx context.Context, label string, matchers []string, start, end time.Time) ([]string, error) {
	path := "/api/v1/label/" + url.PathEscape(label) + "/values"
	resp, err := c.do(ctx, http.MethodGet, path, rangeForm(matchers, start, end))
	if err != nil {
		return nil, err
	}
	var out []string
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return nil, fmt.Errorf("%s: decode: %w", path, err)
	}
	return out, nil
}

func rangeForm(matchers []string, start, end time.Time) url.Values {
	form := url.Values{}
	for _, m := range matchers {
		form.Add("match[]", m)
	}
	if !start.IsZero() {
		form.Set("start", formatTime(start))
	}
	if !end.IsZero() {
		form.Set("end", formatTime(end))
	}
	return form
}

// formatTime writes Unix seconds with millisecond precision, as Grafana does.
func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64)
}

// maxResponse bounds what one answer may occupy in a test's memory.
const maxResponse = 256 << 20

func (c *Client) do(ctx context.Context, method, path string, form url.Values) (*apiResponse, error) {
	var (
		req *http.Request
		err error
	)
	u := c.BaseURL + path
	if method == http.MethodGet {
		if len(form) > 0 {
			u += "?" + form.Encode()
		}
		req, err = http.NewRequestWithContext(ctx, method, u, nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, u, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s: read body: %w", path, err)
	}
	var ar apiResponse
	if jerr := json.Unmarshal(body, &ar); jerr != nil {
		return nil, &APIError{StatusCode: res.StatusCode, Type: "invalid_response", Message: fmt.Sprintf("%s: %v: %.200q", path, jerr, body)}
	}
	if ar.Status != "success" || res.StatusCode/100 != 2 {
		return nil, &APIError{StatusCode: res.StatusCode, Type: ar.ErrorType, Message: ar.Error}
	}
	return &ar, nil
}

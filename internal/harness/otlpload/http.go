package otlpload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/bantay-noc/bantay/internal/metricmodel"
)

// Answer is a collector's answer to one OTLP/HTTP export.
type Answer struct {
	// Status is the HTTP status code.
	Status int
	// Message is what the collector said when it refused the request: the
	// message of the google.rpc.Status in the body (the body itself when it
	// is not one). Empty on success.
	Message string
}

// PostHTTP sends md as one OTLP/HTTP protobuf export to base (the
// receiver's base URL, http://host:4318) and returns the answer. An error
// means no answer (the request could not be sent or read).
func PostHTTP(ctx context.Context, client *http.Client, base string, md pmetric.Metrics) (Answer, error) {
	return postHTTP(ctx, client, base, "", md)
}

// postHTTP is PostHTTP with the probe's bearer token, if not empty.
func postHTTP(ctx context.Context, client *http.Client, base, token string, md pmetric.Metrics) (Answer, error) {
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		return Answer{}, err
	}
	header := http.Header{"Content-Type": {"application/x-protobuf"}}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	return post(ctx, client, base, header, bytes.NewReader(body))
}

// PostBody sends body as it is to base's /v1/metrics with the given
// Content-Type and Content-Encoding ("" for none): what a broken or hostile
// sender posts. The answer is read as PostHTTP reads it.
func PostBody(ctx context.Context, client *http.Client, base, contentType, encoding string, body io.Reader) (Answer, error) {
	header := http.Header{"Content-Type": {contentType}}
	if encoding != "" {
		header.Set("Content-Encoding", encoding)
	}
	return post(ctx, client, base, header, body)
}

// post sends body with header to base's /v1/metrics and reads the answer.
func post(ctx context.Context, client *http.Client, base string, header http.Header, body io.Reader) (Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/v1/metrics", body)
	if err != nil {
		return Answer{}, err
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Answer{}, fmt.Errorf("read answer (HTTP %d): %w", resp.StatusCode, err)
	}
	a := Answer{Status: resp.StatusCode}
	if resp.StatusCode/100 == 2 {
		return a, nil
	}
	var st spb.Status
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-protobuf") && proto.Unmarshal(msg, &st) == nil {
		a.Message = st.GetMessage()
	} else {
		a.Message = string(msg)
	}
	return a, nil
}

// AppendAttempts adds to md a resource with the given attributes holding
// one cumulative bantay.probe.attempts point started at start, and returns
// the point for the caller to give attributes, a value and a time: the
// smallest request a probe (or a misconfigured one) sends.
func AppendAttempts(md pmetric.Metrics, resource map[string]string, start time.Time) pmetric.NumberDataPoint {
	rm := md.ResourceMetrics().AppendEmpty()
	for k, v := range resource {
		rm.Resource().Attributes().PutStr(k, v)
	}
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(metricmodel.Attempts)
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := sum.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	return dp
}

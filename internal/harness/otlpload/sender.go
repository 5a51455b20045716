package otlpload

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Outcome is what became of one export.
type Outcome struct {
	// Acked: the collector answered success.
	Acked bool
	// Reason classifies a refusal: the gRPC code ("ResourceExhausted"),
	// "HTTP 429", or "unreachable" / "timeout" when there was no answer.
	Reason string
	// Message is the collector's message, or the transport error.
	Message string
}

// Sender sends exports to a collector over one connection, as probes do
// with OTLP/gRPC or OTLP/HTTP protobuf, with each probe's bearer token.
type Sender interface {
	Send(ctx context.Context, md pmetric.Metrics, token string) Outcome
	Close() error
}

// Protocols a Sender speaks.
const (
	GRPC = "grpc"
	HTTP = "http"
)

// NewSender connects to endpoint: host:port for gRPC, a base URL
// (http://host:4318) for HTTP. Without TLS: the load tool runs beside the
// collector, on loopback.
func NewSender(protocol, endpoint string) (Sender, error) {
	switch protocol {
	case GRPC:
		conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("otlp/grpc endpoint %q: %w", endpoint, err)
		}
		return &grpcSender{conn: conn, client: pmetricotlp.NewGRPCClient(conn)}, nil
	case HTTP:
		if !strings.HasPrefix(endpoint, "http://") && !strings.HasPrefix(endpoint, "https://") {
			return nil, fmt.Errorf("otlp/http endpoint %q: want a base URL such as http://127.0.0.1:4318", endpoint)
		}
		return &httpSender{base: endpoint, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}}, nil
	}
	return nil, fmt.Errorf("protocol %q: want %s or %s", protocol, GRPC, HTTP)
}

type grpcSender struct {
	conn   *grpc.ClientConn
	client pmetricotlp.GRPCClient
}

func (g *grpcSender) Send(ctx context.Context, md pmetric.Metrics, token string) Outcome {
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	_, err := g.client.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
	switch {
	case err == nil:
		return Outcome{Acked: true}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Outcome{Reason: "timeout", Message: err.Error()}
	case isConnErr(err):
		return Outcome{Reason: "unreachable", Message: err.Error()}
	}
	s, _ := status.FromError(err)
	return Outcome{Reason: s.Code().String(), Message: s.Message()}
}

func (g *grpcSender) Close() error { return g.conn.Close() }

type httpSender struct {
	base   string
	client *http.Client
}

func (h *httpSender) Send(ctx context.Context, md pmetric.Metrics, token string) Outcome {
	a, err := postHTTP(ctx, h.client, h.base, token, md)
	switch {
	case err == nil && a.Status/100 == 2:
		return Outcome{Acked: true}
	case err == nil:
		return Outcome{Reason: fmt.Sprintf("HTTP %d", a.Status), Message: a.Message}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Outcome{Reason: "timeout", Message: err.Error()}
	}
	return Outcome{Reason: "unreachable", Message: err.Error()}
}

func (h *httpSender) Close() error {
	h.client.CloseIdleConnections()
	return nil
}

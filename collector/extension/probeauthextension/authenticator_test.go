package probeauthextension

import (
	"context"
	"testing"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension/internal/metadata"
	"github.com/bantay-noc/bantay/internal/harness/configtest"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/collector/extension/extensiontest"
)

// sha256("test") — the token used below.
const testHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func load(t *testing.T, name string) (*Config, error) {
	t.Helper()
	return configtest.Load[Config](t, NewFactory(), name)
}

// lifecycleHost is the host of mdatagen's generated lifecycle test
// (metadata.yaml's tests.host): a stand-in for the bantay extension, which
// probeauth finds at Start.
func lifecycleHost() component.Host { return hosttest.With(&hosttest.Provider{}) }

func TestConfig(t *testing.T) {
	cfg, err := load(t, "")
	require.NoError(t, err)
	assert.Equal(t, testHash, cfg.Tokens["mnl-01"])
	_, err = load(t, "short")
	assert.ErrorContains(t, err, "tokens::mnl-01: want the 64-hex-digit SHA-256")
	dup := &Config{Tokens: map[string]string{"a": testHash, "b": testHash}}
	assert.ErrorContains(t, dup.Validate(), "every probe needs its own")
	assert.ErrorContains(t, (&Config{}).Validate(), "at least one probe")
}

func TestAuthenticate(t *testing.T) {
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type),
		&Config{Tokens: map[string]string{"mnl-01": testHash}})
	require.NoError(t, err)
	auth := ext.(extensionauth.Server)

	ctx, err := auth.Authenticate(context.Background(), map[string][]string{"authorization": {"Bearer test"}})
	require.NoError(t, err)
	assert.Equal(t, "mnl-01", client.FromContext(ctx).Auth.GetAttribute(ProbeIDAttribute))

	// HTTP canonicalises the header name; the scheme is case-insensitive.
	ctx, err = auth.Authenticate(context.Background(), map[string][]string{"Authorization": {"bearer test"}})
	require.NoError(t, err)
	assert.Equal(t, "mnl-01", client.FromContext(ctx).Auth.GetAttribute(ProbeIDAttribute))

	for name, tc := range map[string]struct {
		sources map[string][]string
		want    error
	}{
		"missing": {map[string][]string{}, errMissing},
		"basic":   {map[string][]string{"authorization": {"Basic dGVzdA=="}}, errMalformed},
		"empty":   {map[string][]string{"authorization": {"Bearer "}}, errMalformed},
		"wrong":   {map[string][]string{"authorization": {"Bearer nope"}}, errUnknown},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := auth.Authenticate(context.Background(), tc.sources)
			assert.ErrorIs(t, err, tc.want)
		})
	}
}

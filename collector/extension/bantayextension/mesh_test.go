package bantayextension

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/bantay-noc/bantay/collector/extension/bantayextension/internal/metadata"
	"github.com/bantay-noc/bantay/collector/extension/probeauthextension"
	"github.com/bantay-noc/bantay/collector/processor/citytagprocessor"
	"github.com/bantay-noc/bantay/internal/harness/hosttest"
	"github.com/bantay-noc/bantay/internal/harness/testenv"
	"github.com/bantay-noc/bantay/internal/meshreg"
)

func hashOf(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// meshGet asks the mesh registry with a bearer token ("" sends none).
func meshGet(t *testing.T, base, token string) (int, string) {
	t.Helper()
	return getWith(t, base+meshreg.Path, func(r *http.Request) {
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
	})
}

// TestMeshRegistryEndpoint runs the extension with a real probeauth and a
// real citytag, as a collector does: a probe asks with its own OTLP token
// and gets every other site with a reflector (city canonical, reflector
// addresses site-wide and per uplink, methods), never a token or a hash;
// a missing or unknown token is refused and counted, as is a request
// before citytag has shared its registry.
func TestMeshRegistryEndpoint(t *testing.T) {
	ctx := context.Background()
	authID := component.NewID(probeauthextension.NewFactory().Type())
	af := probeauthextension.NewFactory()
	acfg := af.CreateDefaultConfig().(*probeauthextension.Config)
	acfg.Extension = component.ID{}
	acfg.Tokens = map[string]string{"mnl-01": hashOf("mnl-token"), "dvo-01": hashOf("dvo-token"), "bag-01": hashOf("bag-token")}
	auth, err := af.Create(ctx, extensiontest.NewNopSettings(af.Type()), acfg)
	require.NoError(t, err)
	require.NoError(t, auth.Start(ctx, hosttest.Host{}))
	defer func() { require.NoError(t, auth.Shutdown(ctx)) }()

	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = testenv.FreeAddr(t)
	cfg.Storage.Path = t.TempDir()
	cfg.Mesh.Authenticator = authID
	ext, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	host := hosttest.Host{component.NewID(metadata.Type): ext, authID: auth}
	require.NoError(t, ext.Start(ctx, host))
	defer func() { require.NoError(t, ext.Shutdown(ctx)) }()
	base := "http://" + cfg.NetAddr.Endpoint

	code, body := meshGet(t, base, "mnl-token")
	assert.Equal(t, http.StatusServiceUnavailable, code, "before citytag shares its registry: %s", body)

	pf := citytagprocessor.NewFactory()
	pcfg := pf.CreateDefaultConfig().(*citytagprocessor.Config)
	pcfg.Probes = map[string]citytagprocessor.ProbeEntry{
		"mnl-01": {City: "Metro Manila", Reflector: "192.0.2.1:7001",
			Uplinks: []citytagprocessor.Uplink{{Carrier: "Globe", NetworkType: "5g"}}},
		"dvo-01": {City: "Davao City", ReflectorMethods: []string{"udp", "icmp"}, Uplinks: []citytagprocessor.Uplink{
			{Carrier: "DITO", NetworkType: "LTE", Reflector: "192.0.2.3:7001"},
			{Carrier: "PLDT", NetworkType: "fiber", Reflector: "198.51.100.3:7001"}}},
		// Registered, measuring, but with no reflector: not a mesh site.
		"bag-01": {City: "Baguio", Uplinks: []citytagprocessor.Uplink{{Carrier: "Smart", NetworkType: "4g"}}},
	}
	require.NoError(t, pcfg.Validate())
	proc, err := pf.CreateMetrics(ctx, processortest.NewNopSettings(pf.Type()), pcfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, proc.Start(ctx, host))
	defer func() { require.NoError(t, proc.Shutdown(ctx)) }()

	code, body = meshGet(t, base, "bag-token")
	require.Equal(t, http.StatusOK, code, body)
	var ans meshreg.Answer
	require.NoError(t, json.Unmarshal([]byte(body), &ans))
	assert.Equal(t, meshreg.Answer{Probe: "bag-01", Sites: []meshreg.Site{
		{Probe: "dvo-01", City: "Davao", Methods: []string{"udp", "icmp"}, Reflectors: []meshreg.Reflector{
			{Address: "192.0.2.3:7001", Carrier: "DITO", NetworkType: "4g"},
			{Address: "198.51.100.3:7001", Carrier: "PLDT", NetworkType: "fiber"}}},
		{Probe: "mnl-01", City: "Manila", Methods: []string{"udp"}, Reflectors: []meshreg.Reflector{{Address: "192.0.2.1:7001"}}},
	}}, ans)

	code, body = meshGet(t, base, "mnl-token")
	require.Equal(t, http.StatusOK, code, body)
	ans = meshreg.Answer{}
	require.NoError(t, json.Unmarshal([]byte(body), &ans))
	require.Len(t, ans.Sites, 1, "a probe is not told to measure itself")
	assert.Equal(t, "dvo-01", ans.Sites[0].Probe)
	for _, tok := range []string{"mnl-token", "dvo-token", hashOf("mnl-token"), hashOf("dvo-token")} {
		assert.NotContains(t, body, tok, "the registry never carries a credential")
	}

	for _, bad := range []string{"", "not-a-probe"} {
		code, body = meshGet(t, base, bad)
		assert.Equal(t, http.StatusUnauthorized, code, "token %q: %s", bad, body)
		assert.NotContains(t, body, "dvo-01")
	}

	code, metrics := get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{
		`bantay_mesh_registry_requests_total{result="ok"} 2`,
		`bantay_mesh_registry_requests_total{result="unauthenticated"} 2`,
		`bantay_mesh_registry_requests_total{result="not_ready"} 1`,
	} {
		assert.True(t, strings.Contains(metrics, want), "/metrics lacks %s", want)
	}
}

// TestMeshAuthenticatorMustExist: the extension depends on the mesh
// authenticator, and one that is not configured fails the start, naming
// the field.
func TestMeshAuthenticatorMustExist(t *testing.T) {
	ctx := context.Background()
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = testenv.FreeAddr(t)
	cfg.Storage.Path = t.TempDir()
	cfg.Mesh.Authenticator = component.NewID(probeauthextension.NewFactory().Type())
	ext, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	assert.Equal(t, []component.ID{cfg.Mesh.Authenticator}, ext.(*Server).Dependencies(), "the collector starts the authenticator first")
	err = ext.Start(ctx, hosttest.Host{})
	require.ErrorContains(t, err, `mesh::authenticator: extension "probeauth" is not configured`)
	_ = ext.Shutdown(ctx)
}

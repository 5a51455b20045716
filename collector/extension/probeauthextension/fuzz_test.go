package probeauthextension

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/extension/extensionauth"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/bantay-noc/bantay/collector/extension/probeauthextension/internal/metadata"
	"github.com/bantay-noc/bantay/internal/harness/configtest"
)

// FuzzTokens feeds arbitrary token files (included as `tokens:
// ${file:probe-tokens.yaml}`) and authorization headers: a file the
// collector's YAML decoder takes is refused naming a field under tokens, or
// the extension starts, and a header is accepted only with a token whose
// SHA-256 the file lists, for exactly that token's probe; anything else is
// one of the three refusals.
func FuzzTokens(f *testing.F) {
	f.Add([]byte("mnl-01: "+testHash+"\n"), "Bearer test")
	f.Add([]byte("mnl-01: "+testHash+"\ndvo-01: "+testHash+"\n"), "bearer test")
	f.Add([]byte("mnl-01: \" "+strings.ToUpper(testHash)+" \"\n"), "Bearer  test ")
	f.Add([]byte("mnl-01: abc\n"), "Bearer abc")
	f.Add([]byte("mnl-01: 12\n"), "Basic dGVzdA==")
	f.Add([]byte("{}"), "")
	f.Fuzz(func(t *testing.T, file []byte, header string) {
		cfg, err, decodeErr := configtest.FromFile[Config](NewFactory(), "tokens", file)
		if decodeErr != nil {
			return
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tokens") {
				t.Fatalf("error does not name the field: %v", err)
			}
			return
		}
		ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
		if err != nil {
			t.Fatalf("valid config %v refused: %v", cfg.Tokens, err)
		}
		ctx, err := ext.(extensionauth.Server).Authenticate(context.Background(), map[string][]string{"authorization": {header}})
		if err != nil {
			if !errors.Is(err, errMissing) && !errors.Is(err, errMalformed) && !errors.Is(err, errUnknown) {
				t.Fatalf("unexpected refusal %v", err)
			}
			return
		}
		probe, _ := client.FromContext(ctx).Auth.GetAttribute(ProbeIDAttribute).(string)
		_, token, _ := strings.Cut(header, " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if want, ok := cfg.Tokens[probe]; !ok || !strings.EqualFold(strings.TrimSpace(want), hex.EncodeToString(sum[:])) {
			t.Fatalf("header %q accepted as probe %q, whose hash is %q", header, probe, want)
		}
	})
}

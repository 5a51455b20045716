// Package archtest holds tests of the module's dependency structure: what
// a package links is part of its design (binary size, attack surface, and
// which goroutines and globals it drags in), and it drifts silently when
// one import is added for one type.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/bantay-noc/bantay"

// TestPipelineComponentsDoNotLinkTheHub guards issue 11: internal/events
// once imported the heatmap for its event type, so citytag and probeauth,
// which only publish events, linked gorilla/websocket and the whole hub.
// They may know the heatmap's vocabulary (its point, event and feed types
// in heatmap/pathstate, aggregate and wire, which the shared-state
// contract names), never the hub, its websocket transport or the heatmap
// that assembles them.
func TestPipelineComponentsDoNotLinkTheHub(t *testing.T) {
	forbidden := map[string]bool{
		"github.com/gorilla/websocket": true,
		module + "/heatmap":            true,
		module + "/heatmap/hub":        true,
		module + "/heatmap/rebuild":    true,
	}
	for _, pkg := range []string{
		module + "/collector/processor/citytagprocessor",
		module + "/collector/extension/probeauthextension",
		module + "/collector/sharedstate",
	} {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			msg := err.Error()
			if ee, ok := err.(*exec.ExitError); ok {
				msg += ": " + string(ee.Stderr)
			}
			t.Fatalf("go list -deps %s: %s", pkg, msg)
		}
		for _, dep := range strings.Fields(string(out)) {
			if forbidden[dep] {
				t.Errorf("%s links %s; it may know the heatmap's types, not its hub", pkg, dep)
			}
		}
	}
}

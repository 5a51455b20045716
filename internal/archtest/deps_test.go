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
// They may know the heatmap's vocabulary (heatmap/pathstate), nothing more.
func TestPipelineComponentsDoNotLinkTheHub(t *testing.T) {
	for _, pkg := range []string{
		module + "/collector/processor/citytagprocessor",
		module + "/collector/extension/probeauthextension",
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
			heatmapPkg := dep == module+"/heatmap" || strings.HasPrefix(dep, module+"/heatmap/")
			if dep == "github.com/gorilla/websocket" || (heatmapPkg && dep != module+"/heatmap/pathstate") {
				t.Errorf("%s links %s; it should need at most %s/heatmap/pathstate", pkg, dep, module)
			}
		}
	}
}

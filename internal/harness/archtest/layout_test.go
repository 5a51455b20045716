package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

// The three kinds of code (docs/ARCHITECTURE.md): the product, the demo
// (internal/demo and its simulated network) and the test harness
// (internal/harness: real-peer runners, load senders, test hosts). The
// product never links the other two, so nothing a deployment runs depends
// on a simulation or a test helper. Commands that exist to run the demo or
// to measure are the only product-tree packages allowed to.
var (
	demoTree    = module + "/internal/demo"
	harnessTree = module + "/internal/harness"
	// tools run the demo or drive load; they are not part of a deployment.
	tools = map[string]bool{
		module + "/collector/cmd/bantay-demo":    true,
		module + "/collector/cmd/bantay-loadgen": true,
		module + "/heatmap/cmd/heatmapload":      true,
	}
)

func within(pkg, tree string) bool { return pkg == tree || strings.HasPrefix(pkg, tree+"/") }

// TestProductLinksNeitherDemoNorHarness fails when a product package comes
// to depend (directly or through another package) on the demo or the test
// harness.
func TestProductLinksNeitherDemoNorHarness(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg += ": " + string(ee.Stderr)
		}
		t.Fatalf("go list: %s", msg)
	}
	products := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, deps := f[0], f[1:]
		if within(pkg, demoTree) || within(pkg, harnessTree) || tools[pkg] {
			continue
		}
		products++
		for _, dep := range deps {
			if within(dep, demoTree) || within(dep, harnessTree) {
				t.Errorf("product package %s links %s", pkg, dep)
			}
		}
	}
	if products < 20 {
		t.Fatalf("only %d product packages listed; the module path or the listing is wrong", products)
	}
}

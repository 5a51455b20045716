package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The committed JSON is exactly what the generator writes now.
func TestCommittedJSONIsUpToDate(t *testing.T) {
	files, err := render()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "grafana", name))
		if err != nil {
			t.Errorf("%v (run go generate ./dashboards/...)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("grafana/%s differs from the generator's output: run go generate ./dashboards/...", name)
		}
	}
	// No stale file left behind by a renamed or removed dashboard.
	committed, err := filepath.Glob(filepath.Join("..", "grafana", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range committed {
		if _, ok := files[filepath.Base(path)]; !ok {
			t.Errorf("%s is not generated any more: delete it", path)
		}
	}
}

// Generating twice gives the same bytes (no map-order or time dependence).
func TestRenderIsDeterministic(t *testing.T) {
	a, err := render()
	if err != nil {
		t.Fatal(err)
	}
	b, err := render()
	if err != nil {
		t.Fatal(err)
	}
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between two renders", name)
		}
	}
}

// run -check fails on a tampered file and passes on a fresh one.
func TestRunCheck(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir, false); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, true); err != nil {
		t.Fatalf("check right after writing: %v", err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	slices.Sort(names)
	if len(names) == 0 {
		t.Fatal("nothing written")
	}
	if err := os.WriteFile(names[0], []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, true); err == nil {
		t.Errorf("check passed although %s was overwritten", names[0])
	}
}

package modbuild

import (
	"os"
	"path/filepath"
	"testing"
)

// copyTree leaves out the skipped top-level folders only: a nested folder
// of the same name is part of the build (Thanos has pkg/…/docs-like names).
func TestCopyTreeSkipsTopLevelFoldersOnly(t *testing.T) {
	from, to := t.TempDir(), t.TempDir()
	for _, f := range []string{"go.mod", "docs/a.md", "cmd/x/main.go", "cmd/docs/keep.go"} {
		p := filepath.Join(from, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyTree(from, to, []string{"docs"}); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]bool{"go.mod": true, "docs/a.md": false, "cmd/x/main.go": true, "cmd/docs/keep.go": true} {
		st, err := os.Stat(filepath.Join(to, f))
		if got := err == nil; got != want {
			t.Errorf("%s copied: %v, want %v", f, got, want)
			continue
		}
		// The module cache is read-only; the copy must be writable for go build.
		if want && st.Mode().Perm()&0o200 == 0 {
			t.Errorf("%s: mode %v, want writable", f, st.Mode())
		}
	}
}

func TestTail(t *testing.T) {
	if got := Tail("  abcdef \n", 3); got != "…def" {
		t.Errorf("Tail = %q, want %q", got, "…def")
	}
	if got := Tail("ab", 3); got != "ab" {
		t.Errorf("Tail = %q, want %q", got, "ab")
	}
}

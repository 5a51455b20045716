package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

var builds sync.Map // import path → *build

type build struct {
	once sync.Once
	bin  string
	err  error
}

// Command builds the command with the given import path (for example
// github.com/bantay-noc/bantay/collector/cmd/bantay-collector) once per
// test process and returns the binary's path, so that tests run the very
// binary a user builds.
func Command(t testing.TB, importPath string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(importPath, &build{})
	b := v.(*build)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "bantay-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.bin = filepath.Join(dir, path.Base(importPath))
		if out, err := exec.Command("go", "build", "-o", b.bin, importPath).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", importPath, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

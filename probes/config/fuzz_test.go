package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse: whatever the file holds, Parse returns a config or an error
// naming the file, and never panics (the line lookup walks arbitrary trees).
func FuzzParse(f *testing.F) {
	example, _ := os.ReadFile("testdata/probe.yaml")
	f.Add(example)
	f.Add([]byte(valid))
	f.Add([]byte("targets: [{name: a, method: udp}]\nuplinks: 3\n"))
	f.Add([]byte("probe: [1, 2]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if cfg.Probe.ID == "" || len(cfg.Uplinks) == 0 || len(cfg.Targets) == 0 {
			t.Fatalf("accepted an incomplete config: %+v", cfg)
		}
		for _, tg := range cfg.Targets {
			if tg.Timeout <= 0 || tg.Timeout >= tg.Interval {
				t.Fatalf("accepted target %+v", tg)
			}
		}
	})
}

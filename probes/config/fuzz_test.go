package config

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/bantay-noc/bantay/internal/meshreg"
)

// FuzzParse: whatever the file holds, Parse returns a config or an error
// naming the file, and never panics (the line lookup walks arbitrary trees).
func FuzzParse(f *testing.F) {
	example, _ := os.ReadFile("testdata/probe.yaml")
	f.Add(example)
	f.Add([]byte(valid))
	f.Add([]byte("targets: [{name: a, method: udp}]\nuplinks: 3\n"))
	f.Add([]byte("probe: [1, 2]\n"))
	f.Add([]byte(meshOnly + "mesh: {refresh: 5s, methods: [udp]}\nreflector: {listen: \"0.0.0.0:7001\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if cfg.Probe.ID == "" || len(cfg.Uplinks) == 0 || (len(cfg.Targets) == 0 && !cfg.Mesh.Enabled) {
			t.Fatalf("accepted an incomplete config: %+v", cfg)
		}
		for _, tg := range cfg.Targets {
			if tg.Timeout <= 0 || tg.Timeout >= tg.Interval {
				t.Fatalf("accepted target %+v", tg)
			}
		}
	})
}

// FuzzMeshAnswer: whatever the collector answers, MeshTargets returns
// targets that pass the same validation as the file's (and names that are
// unique), or problems, and never panics.
func FuzzMeshAnswer(f *testing.F) {
	f.Add([]byte(`{"probe":"mnl-01","sites":[{"probe":"dvo-01","city":"Davao","methods":["udp","icmp"],` +
		`"reflectors":[{"address":"192.0.2.3:7001"},{"address":"[2001:db8::3]:7001","carrier":"PLDT","network_type":"fiber"}]}]}`))
	f.Add([]byte(`{"probe":"mnl-01","sites":[{"probe":"x y","city":"Gotham","methods":["tcp"],"reflectors":[{"address":":0"}]}]}`))
	cfg, err := Parse("m.yaml", []byte(meshOnly+"mesh: true\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ans meshreg.Answer
		if json.Unmarshal(data, &ans) != nil {
			return
		}
		targets, _ := cfg.MeshTargets(ans)
		check := *cfg
		check.Targets = targets
		if err := check.Validate(); err != nil {
			t.Fatalf("mesh targets %+v do not validate: %v", targets, err)
		}
	})
}

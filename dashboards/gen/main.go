// Command gen writes Bantay's Grafana dashboards (dashboards/grafana/*.json)
// from the Go definitions in this package, built with the Grafana Foundation
// SDK. Run it through `go generate ./dashboards/...`; -check compares instead
// of writing and fails when the committed JSON is out of date.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/loki"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"slices"
)

func main() {
	out := flag.String("out", "grafana", "directory to write the dashboard JSON files to")
	check := flag.Bool("check", false, "compare with the files in -out instead of writing them")
	flag.Parse()
	if err := run(*out, *check); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string, check bool) error {
	files, err := render()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(dir, name)
		if check {
			old, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, err)
			} else if !bytes.Equal(old, files[name]) {
				errs = append(errs, fmt.Errorf("%s is out of date: regenerate it with 'go generate ./dashboards/...'", path))
			}
			continue
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// render builds every dashboard and returns its JSON by file name.
func render() (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, b := range generated() {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		assignIDs(&d)
		js, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("marshal %s: %w", name, err)
		}
		out[name] = append(js, '\n')
	}
	return out, nil
}

// assignIDs numbers the panels and names their queries A, B, … as Grafana
// does when a panel is saved, so that the committed JSON is what Grafana
// would store and panel links (viewPanel=<id>) stay stable.
func assignIDs(d *dashboard.Dashboard) {
	for i := range d.Panels {
		id := uint32(i + 1)
		if r := d.Panels[i].RowPanel; r != nil {
			r.Id = id
		}
		p := d.Panels[i].Panel
		if p == nil {
			continue
		}
		p.Id = &id
		for j, t := range p.Targets {
			ref := string(rune('A' + j))
			switch q := t.(type) {
			case prometheus.Dataquery:
				if q.RefId == nil {
					q.RefId = &ref
				}
				p.Targets[j] = q
			case loki.Dataquery:
				if q.RefId == nil {
					q.RefId = &ref
				}
				p.Targets[j] = q
			}
		}
	}
}

package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/bantay-noc/bantay/internal/harness/otlpload"
)

// fleetFlags shape the simulated fleet; setup, run and bench share them, so
// the same numbers give the same probe ids, cities, uplinks and targets.
type fleetFlags struct {
	probes, targets, uplinks int
}

func (f *fleetFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.probes, "probes", 25, "simulated probes")
	fs.IntVar(&f.targets, "targets", 5, "targets per probe (each measured on every uplink)")
	fs.IntVar(&f.uplinks, "uplinks", 1, fmt.Sprintf("uplinks per probe (1 to %d, distinct carriers)", otlpload.MaxUplinks))
}

func (f *fleetFlags) fleet() ([]otlpload.Probe, error) {
	fl, err := otlpload.NewFleet(f.probes, f.targets, f.uplinks)
	if err != nil {
		return nil, fmt.Errorf("-%s", err) // NewFleet names the field, which is the flag
	}
	return fl, nil
}

// series is the number of OTLP point streams: one point per export each.
func (f *fleetFlags) series() int {
	return f.probes * f.uplinks * f.targets * otlpload.PointsPerTarget
}

func setupCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ff fleetFlags
	ff.register(fs)
	out := fs.String("out", "", "directory to write probes.yaml (citytag's registry), probe-tokens.yaml (probeauth's hashes) and tokens/<probe>.token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("setup: -out is required")
	}
	fleet, err := ff.fleet()
	if err != nil {
		return err
	}
	if err := writeFleet(*out, fleet); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d probes, %d OTLP series: registry %s, token hashes %s, tokens in %s\n", len(fleet), ff.series(),
		filepath.Join(*out, "probes.yaml"), filepath.Join(*out, "probe-tokens.yaml"), filepath.Join(*out, "tokens"))
	return nil
}

// writeFleet writes what a collector and the load tool need for fleet.
func writeFleet(dir string, fleet []otlpload.Probe) error {
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return err
	}
	var reg, hashes strings.Builder
	reg.WriteString("# bantay-loadgen's simulated probes (citytag registry).\n")
	hashes.WriteString("# bantay-loadgen's simulated probes: SHA-256 of each token in tokens/.\n")
	for _, p := range fleet {
		fmt.Fprintf(&reg, "%s:\n  city: %q\n  uplinks:\n", p.ID, p.City)
		for _, u := range p.Uplinks {
			fmt.Fprintf(&reg, "    - {carrier: %s, network_type: %s}\n", u.Carrier, u.NetworkType)
		}
		fmt.Fprintf(&hashes, "%s: %s\n", p.ID, p.TokenHash())
		if err := os.WriteFile(filepath.Join(tokens, p.ID+".token"), []byte(p.Token+"\n"), 0o600); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "probes.yaml"), []byte(reg.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "probe-tokens.yaml"), []byte(hashes.String()), 0o644)
}

// loadTokens gives every probe of fleet its token: from dir/<probe>.token
// or from file (YAML: probe id → token). A probe without one is an error
// naming it, since the collector would refuse all its data.
func loadTokens(fleet []otlpload.Probe, dir, file string) error {
	var byID map[string]string
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("-tokens: %w", err)
		}
		if err := yaml.Unmarshal(data, &byID); err != nil {
			return fmt.Errorf("-tokens %s: want a YAML map of probe id to token: %w", file, err)
		}
	}
	for i := range fleet {
		p := &fleet[i]
		if file != "" {
			tok, ok := byID[p.ID]
			if !ok || tok == "" {
				return fmt.Errorf("-tokens %s: no token for probe %s", file, p.ID)
			}
			p.Token = tok
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, p.ID+".token"))
		if err != nil {
			return fmt.Errorf("-token-dir: probe %s: %w", p.ID, err)
		}
		if p.Token = strings.TrimSpace(string(data)); p.Token == "" {
			return fmt.Errorf("-token-dir: %s is empty", filepath.Join(dir, p.ID+".token"))
		}
	}
	return nil
}

package netsim

import (
	"testing"
	"time"

	"github.com/bantay-noc/bantay/internal/gazetteer"
)

func TestDemoUplinksAreCanonical(t *testing.T) {
	g := gazetteer.Default()
	seen := map[string]bool{}
	for _, u := range DemoUplinks() {
		if c, ok := g.City(u.City); !ok || c.Name != u.City {
			t.Errorf("%s: city %q is not canonical", u.Name, u.City)
		}
		if c, ok := g.Carrier(u.Carrier); !ok || c != u.Carrier {
			t.Errorf("%s: carrier %q is not canonical", u.Name, u.Carrier)
		}
		if n, ok := g.NetworkType(u.NetworkType); !ok || n != u.NetworkType {
			t.Errorf("%s: network type %q is not canonical", u.Name, u.NetworkType)
		}
		if !u.Addr.IsLoopback() || seen[u.Addr.String()] {
			t.Errorf("%s: address %s must be a unique loopback address", u.Name, u.Addr)
		}
		seen[u.Addr.String()] = true
	}
}

func profileFor(t *testing.T, carrier, network, src, dst string) Profile {
	t.Helper()
	for _, u := range DemoUplinks() {
		if u.Carrier == carrier && u.NetworkType == network && u.City == src {
			p, err := DemoProfile(u, dst)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatalf("no demo uplink %s %s in %s", carrier, network, src)
	return Profile{}
}

// TestDemoProfilesAreRealistic pins the ranges docs/demo-network.md promises.
func TestDemoProfilesAreRealistic(t *testing.T) {
	ms := time.Millisecond
	ranges := []struct {
		carrier, network, src, dst string
		lo, hi                     time.Duration
	}{
		{"PLDT", "fiber", "Manila", "Manila", 2 * ms, 5 * ms},
		{"Converge", "fiber", "Baguio", "Manila", 8 * ms, 15 * ms},
		{"PLDT", "fiber", "Manila", "Baguio", 8 * ms, 15 * ms},
		{"PLDT", "fiber", "Manila", "Davao", 25 * ms, 40 * ms},
		{"PLDT", "fiber", "Davao", "Manila", 25 * ms, 40 * ms},
		{"Converge", "fiber", "Baguio", "Davao", 35 * ms, 50 * ms},
	}
	for _, r := range ranges {
		p := profileFor(t, r.carrier, r.network, r.src, r.dst)
		if p.Base < r.lo || p.Base > r.hi {
			t.Errorf("%s %s %s→%s base %v, want %v–%v", r.carrier, r.network, r.src, r.dst, p.Base, r.lo, r.hi)
		}
	}
	dito := profileFor(t, "DITO", "4g", "Davao", "Manila")
	pldt := profileFor(t, "PLDT", "fiber", "Davao", "Manila")
	if dito.Base < 2*pldt.Base || dito.Loss < 0.02 || pldt.Loss != 0 {
		t.Errorf("DITO 4G Davao→Manila (%v) must be clearly worse than PLDT fiber (%v)", dito, pldt)
	}
	if j4, jf := profileFor(t, "Smart", "4g", "Baguio", "Davao").Jitter, profileFor(t, "Converge", "fiber", "Baguio", "Davao").Jitter; j4 <= 4*jf {
		t.Errorf("4G jitter %v should be far above fiber jitter %v", j4, jf)
	}
	tables := DemoProfiles()
	for _, city := range DemoCities() {
		tb := tables[city]
		if tb == nil {
			t.Fatalf("no table for %s", city)
		}
		for _, u := range DemoUplinks() {
			want, _ := DemoProfile(u, city)
			if got := tb.Lookup(u.Addr); got != want {
				t.Errorf("%s table, %s: %v, want %v", city, u.Addr, got, want)
			}
		}
	}
}

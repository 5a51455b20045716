package netsim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bantay-noc/bantay/internal/gazetteer"
)

// Incident is a staged degradation of the demo network, written as
//
//	CITY[/CARRIER]: EFFECT[, EFFECT…] [after DURATION] [for DURATION]
//
// e.g. "Davao/Globe: +80ms, 5% loss after 60s for 5m". It hits every demo
// path on CARRIER (every carrier without one) that starts or ends in CITY:
// the carrier's network in that city. An EFFECT is "+DURATION" (added round
// trip), "+DURATION jitter" (added mean queueing delay) or "N% loss" (loss
// added independently of the path's own). "after" delays the start (from
// the demo's start, or from the button press), "for" bounds it (without
// it, it lasts until the demo stops). Durations are Go's (80ms, 1m30s);
// cities and carriers accept gazetteer aliases ("Davao City", "globe").
type Incident struct {
	Spec    string // as written
	City    string // canonical
	Carrier string // canonical; "" is every carrier
	Delay   time.Duration
	Jitter  time.Duration
	Loss    float64
	After   time.Duration
	For     time.Duration // 0: until the demo stops
}

// ParseIncident parses the grammar above; an error quotes the bad part.
func ParseIncident(spec string) (Incident, error) {
	inc := Incident{Spec: strings.TrimSpace(spec)}
	fail := func(format string, a ...any) (Incident, error) {
		return Incident{}, fmt.Errorf("incident %q: %s", spec, fmt.Sprintf(format, a...))
	}
	scope, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return fail("want CITY[/CARRIER]: EFFECTS, e.g. \"Davao/Globe: +80ms, 5%% loss for 5m\"")
	}
	city, carrier, _ := strings.Cut(strings.TrimSpace(scope), "/")
	gaz := gazetteer.Default()
	c, ok := gaz.City(strings.TrimSpace(city))
	if !ok {
		return fail("city %q is not in the gazetteer", strings.TrimSpace(city))
	}
	inc.City = c.Name
	if carrier = strings.TrimSpace(carrier); carrier != "" {
		if inc.Carrier, ok = gaz.Carrier(carrier); !ok {
			return fail("carrier %q is not in the gazetteer", carrier)
		}
	}
	if len(inc.Paths()) == 0 {
		return fail("no demo path on %s starts or ends in %s (demo cities: %s)", carrier, inc.City, strings.Join(DemoCities(), ", "))
	}

	words := strings.Fields(strings.ReplaceAll(rest, ",", " , "))
	duration := func(i int, what string) (time.Duration, error) {
		if i >= len(words) {
			return 0, fmt.Errorf("%q needs a duration", what)
		}
		d, err := time.ParseDuration(words[i])
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%s %q is not a positive duration (e.g. 60s, 5m)", what, words[i])
		}
		return d, nil
	}
	effects, seen := 0, map[string]bool{}
	for i := 0; i < len(words); i++ {
		w := words[i]
		var err error
		switch {
		case w == ",":
			continue
		case w == "after" || w == "for":
			if seen[w] {
				return fail("%q given twice", w)
			}
			seen[w] = true
			d, derr := duration(i+1, w)
			if w == "after" {
				inc.After = d
			} else {
				inc.For = d
			}
			err = derr
			i++
		case strings.HasPrefix(w, "+"):
			d, derr := time.ParseDuration(w[1:])
			if derr != nil || d <= 0 {
				return fail("effect %q: want +DURATION, e.g. +80ms", w)
			}
			if i+1 < len(words) && words[i+1] == "jitter" {
				inc.Jitter += d
				i++
			} else {
				inc.Delay += d
			}
			effects++
		case strings.HasSuffix(w, "%"):
			p, perr := strconv.ParseFloat(strings.TrimSuffix(w, "%"), 64)
			if perr != nil || p <= 0 || p >= 100 {
				return fail("effect %q: want a loss above 0%% and below 100%%", w)
			}
			if i+1 >= len(words) || words[i+1] != "loss" {
				return fail("effect %q: want \"%s loss\"", w, w)
			}
			inc.Loss = 1 - (1-inc.Loss)*(1-p/100)
			effects++
			i++
		default:
			return fail("%q is not an effect (+80ms, +20ms jitter, 5%% loss) nor \"after\"/\"for\"", w)
		}
		if err != nil {
			return fail("%v", err)
		}
	}
	if effects == 0 {
		return fail("no effect: give +DURATION, +DURATION jitter or N%% loss")
	}
	return inc, nil
}

// Path is one demo path: an uplink and the city of the servers it measures.
type Path struct {
	Uplink DemoUplink
	Dst    string
}

// Paths are the demo paths the incident hits.
func (inc Incident) Paths() []Path {
	var out []Path
	for _, u := range DemoUplinks() {
		if inc.Carrier != "" && u.Carrier != inc.Carrier {
			continue
		}
		for _, dst := range DemoCities() {
			if u.City == inc.City || dst == inc.City {
				out = append(out, Path{u, dst})
			}
		}
	}
	return out
}

// Degrade is p with the incident's effects added.
func (inc Incident) Degrade(p Profile) Profile {
	p.Base += inc.Delay
	p.Jitter += inc.Jitter
	p.Loss = 1 - (1-p.Loss)*(1-inc.Loss)
	return p
}

// Apply degrades the incident's paths in tables (keyed by destination
// city, as DemoProfiles returns them) and returns the function that puts
// back the profiles they had. Applying an incident while another is in
// force stacks them; restore in reverse order.
func (inc Incident) Apply(tables map[string]*Table) (func(), error) {
	type saved struct {
		t *Table
		u DemoUplink
		p Profile
	}
	var undo []saved
	restore := func() {
		for _, s := range slices.Backward(undo) {
			_ = s.t.Set(s.u.Addr, s.p) // it was valid when saved
		}
	}
	for _, path := range inc.Paths() {
		t, ok := tables[path.Dst]
		if !ok {
			restore()
			return nil, fmt.Errorf("incident %q: no impairment table for %s", inc.Spec, path.Dst)
		}
		old := t.Lookup(path.Uplink.Addr)
		if err := t.Set(path.Uplink.Addr, inc.Degrade(old)); err != nil {
			restore()
			return nil, fmt.Errorf("incident %q: %w", inc.Spec, err)
		}
		undo = append(undo, saved{t, path.Uplink, old})
	}
	var once sync.Once
	return func() { once.Do(restore) }, nil
}

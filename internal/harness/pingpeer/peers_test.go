package pingpeer

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// fping -C prints its per-packet report on stderr, one line per target, in
// milliseconds with three significant digits and "-" for a lost packet.
func TestParseFping(t *testing.T) {
	out := "198.18.0.2 : 1.14 - 10.2 201 0.037\n"
	line, ok := reportLine(out, "198.18.0.2")
	if !ok {
		t.Fatalf("no report line in %q", out)
	}
	m, err := parseFping(line, 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{1140 * time.Microsecond, 10200 * time.Microsecond, 201 * time.Millisecond, 37 * time.Microsecond}
	if m.Lost != 1 || !slices.EqualFunc(m.RTTs, want, func(a, b time.Duration) bool { return (a - b).Abs() < time.Microsecond }) {
		t.Errorf("parsed %+v, want %v and 1 lost", m, want)
	}
	if _, ok := reportLine(out, "198.18.0.3"); ok {
		t.Error("a report line for a target fping did not ping")
	}
	for _, bad := range []string{"1.14 -", "1.14 x 3"} {
		if _, err := parseFping(bad, 3); err == nil || !strings.Contains(err.Error(), "fping") {
			t.Errorf("parseFping(%q, 3): error %v, want one naming fping", bad, err)
		}
	}
}

package agent

import (
	"fmt"
	"math"
	"runtime/debug"
	"sync"

	"github.com/bantay-noc/bantay/probes/config"
	"github.com/bantay-noc/bantay/probes/prober"
)

// The soft memory limit a probe sets for itself (LimitMemory): a base for
// the runtime, the SDK and the exporters, and a share per schedule (one
// target on one uplink) and per latency histogram it records. Measured with
// 1,000 udp targets on one uplink (docs/BENCHMARKS.md, "Probe footprint"):
// the live heap after a collection is 15–18 MB, about 11 KB a schedule over
// a base of 5 MB, and what the runtime holds beyond the heap (freed spans it
// has not yet returned to the kernel) took the resident size to 72–84 MiB
// with Go's default GOGC=100 alone. The shares are about twice what a
// schedule keeps live, so the limit leaves the garbage collector the
// headroom GOGC=100 would (it works no harder), while bounding what the
// runtime keeps besides: 43 MiB at 1,000 udp targets.
const (
	memoryBase         = 20 << 20
	memoryPerSchedule  = 16 << 10
	memoryPerHistogram = 8 << 10
)

// memoryShare is what one schedule of t adds to the limit: an http target
// records a latency histogram per phase besides its total, and each form
// (classic, exponential) is a histogram of its own.
func memoryShare(t config.Target, rec config.Recording) int64 {
	histograms := 1
	if t.Method == config.MethodHTTP {
		histograms += len(prober.PhaseNames)
	}
	if rec.Classic() && rec.Exponential() {
		histograms *= 2
	}
	return memoryPerSchedule + int64(histograms)*memoryPerHistogram
}

// memoryLimit keeps the process's soft memory limit at what the agent's
// schedules need. It only grows: the SDK keeps the series of a mesh target
// that left, so its memory stays too. (One that comes back is counted
// again: an overestimate, which only leaves the collector more room.)
type memoryLimit struct {
	mu    sync.Mutex
	bytes int64 // 0 until LimitMemory
}

// LimitMemory makes the agent set the process's soft memory limit
// (runtime/debug.SetMemoryLimit) to what its schedules need, from Run on,
// and raise it as mesh targets join. Without a limit the runtime keeps twice
// the live heap and the memory it freed but has not returned: a probe with
// 1,000 udp targets was 70–88 MiB resident, 55–58 MiB with this limit
// (43.4 MiB). It is for a process that is one probe: bantay-probe run
// calls it unless GOMEMLIMIT is set (the operator's limit wins); the demo,
// several probes in one process, does not. Call it before Run.
func (a *Agent) LimitMemory() {
	a.memory.mu.Lock()
	defer a.memory.mu.Unlock()
	a.memory.bytes = memoryBase
	for _, t := range a.cfg.Targets {
		a.memory.bytes += int64(len(a.uplink)) * memoryShare(t, a.cfg.Recording)
	}
}

// raiseMemoryLimit adds n schedules of t to the limit, if the agent keeps
// one, and sets it; t nil sets the limit as it is.
func (a *Agent) raiseMemoryLimit(t *config.Target, n int) {
	a.memory.mu.Lock()
	defer a.memory.mu.Unlock()
	if a.memory.bytes == 0 {
		return
	}
	if t != nil {
		a.memory.bytes += int64(n) * memoryShare(*t, a.cfg.Recording)
	}
	debug.SetMemoryLimit(a.memory.bytes)
}

// MemoryLimit is the soft memory limit the agent keeps, 0 without
// LimitMemory.
func (a *Agent) MemoryLimit() int64 {
	a.memory.mu.Lock()
	defer a.memory.mu.Unlock()
	return a.memory.bytes
}

// memoryLimitText is the process's soft memory limit as the log shows it:
// the agent's, GOMEMLIMIT's, or none.
func memoryLimitText() string {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return fmt.Sprintf("%.1f MiB", float64(l)/(1<<20))
	}
	return "none"
}

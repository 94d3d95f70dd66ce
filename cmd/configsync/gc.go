package main

import (
	"flag"
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// Defaults of the garbage collector settings of the roles that sync. A sync's live
// heap is small (about 30 MB) next to what it allocates (17 KB per item): with Go's
// default GOGC=100 the collector ran every 50 ms and took 12% of a full resync's CPU
// (docs/benchmarks.md). 400 collects a quarter as often; the soft limit bounds the
// heap when the live heap grows (a million items), by collecting more often.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = "192MiB"
)

// gcSettings are the garbage collector flags of the roles that sync (dev, worker,
// bench sync). The Go runtime's own GOGC and GOMEMLIMIT win over them when set, as
// an operator who sets those expects.
type gcSettings struct {
	percent string
	limit   string
}

func (g *gcSettings) register(fs *flag.FlagSet, env *environment) {
	fs.StringVar(&g.percent, "gc-percent", env.envOr("CONFIGSYNC_GC_PERCENT", strconv.Itoa(defaultGCPercent)),
		"heap growth, in percent of the live heap, that starts a garbage collection, as GOGC; off: only the memory limit does (CONFIGSYNC_GC_PERCENT; GOGC wins when set)")
	fs.StringVar(&g.limit, "memory-limit", env.envOr("CONFIGSYNC_MEMORY_LIMIT", defaultMemoryLimit),
		"soft limit of the Go runtime's memory, as GOMEMLIMIT: bytes with an optional B, KiB, MiB, GiB or TiB; 0: none. Give about 3/4 of a container's memory (CONFIGSYNC_MEMORY_LIMIT; GOMEMLIMIT wins when set)")
}

// apply sets the settings, except those whose runtime variable is set (an empty one
// counts as unset, as the runtime counts it). It returns
// what undoes them (for tests, which share a process).
func (g *gcSettings) apply(env *environment) (undo func(), err error) {
	percent, err := parseGCPercent(g.percent)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("--gc-percent (CONFIGSYNC_GC_PERCENT) %q: %v", g.percent, err)}
	}
	limit, err := parseMemoryLimit(g.limit)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("--memory-limit (CONFIGSYNC_MEMORY_LIMIT) %q: %v", g.limit, err)}
	}
	var undos []func()
	if v, _ := env.lookup("GOGC"); v == "" {
		old := debug.SetGCPercent(percent)
		undos = append(undos, func() { debug.SetGCPercent(old) })
	}
	if v, _ := env.lookup("GOMEMLIMIT"); v == "" {
		old := debug.SetMemoryLimit(limit)
		undos = append(undos, func() { debug.SetMemoryLimit(old) })
	}
	return func() {
		for _, u := range undos {
			u()
		}
	}, nil
}

// parseGCPercent reads a GOGC value: a percentage, or off (-1, as debug.SetGCPercent
// takes it).
func parseGCPercent(s string) (int, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "off") {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("want a percentage of at least 1, or off")
	}
	return n, nil
}

// parseMemoryLimit reads a GOMEMLIMIT value: a byte count with an optional unit (B,
// KiB, MiB, GiB, TiB), where 0 is no limit.
func parseMemoryLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("want a byte count with an optional B, KiB, MiB, GiB or TiB, such as 192MiB; 0 for none")
	}
	if n == 0 {
		return math.MaxInt64, nil // the runtime's "no limit"
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("larger than the runtime takes")
	}
	return n * mult, nil
}

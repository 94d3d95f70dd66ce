package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/configsync/configsync/benchmark"
	"github.com/configsync/configsync/mapping"
)

// runBenchSync runs `configsync bench sync` (issue 7): the jq CLI mapping the items
// from an NDJSON file as the baseline, then configsync syncing the same items from a
// local GitHub-like server (full, unchanged, 1% changed and 1% removed) in this
// process, and the patch-to-run-start latency.
func runBenchSync(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("bench sync", env.stderr)
	items := fs.Int("items", 100_000, "GitHub-like repositories the local server lists")
	redisURL := fs.String("redis-url", env.envOr("CONFIGSYNC_REDIS_URL", "redis://127.0.0.1:6379/0"),
		"Redis to sync into, under a key prefix of the run's own that is removed at the end (CONFIGSYNC_REDIS_URL)")
	configPath := fs.String("config", "../shared/compat/ocean-integrations/github/port-app-config.yml", "config whose repository resource is synced (blueprints.json next to it is loaded)")
	jqPath := fs.String("jq", "jq", "the jq CLI to compare with")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the three resyncs to this file")
	profilePhase := fs.String("cpuprofile-phase", "", "profile only this resync: full, unchanged or changed (default: all three)")
	traceFile := fs.String("trace", "", "write a runtime execution trace of the three resyncs to this file (go tool trace; shows where the stages wait)")
	latencySamples := fs.Int("latency-samples", 9, "patch-to-run-start latencies to measure (each is an unchanged resync)")
	memProfile := fs.String("memprofile", "", "write a heap profile to this file when the full resync ends (what it left in memory)")
	runs := fs.Int("runs", 1, "times to run the jq baseline and the resyncs, one after the other; with more than one, the median time/jq of each resync ends the report (--memprofile and --cpuprofile-phase cover the first run)")
	var gc gcSettings // the worker's, measured as a worker runs
	gc.register(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *runs < 1 {
		return &usageError{"--runs is at least 1"}
	}
	undoGC, err := gc.apply(env)
	if err != nil {
		return err
	}
	defer undoGC()
	jqBin, err := exec.LookPath(*jqPath)
	if err != nil {
		return fmt.Errorf("the jq CLI is the baseline and was not found (apt-get install jq): %w", err)
	}
	cfgDoc, err := benchmark.Config(*configPath, 0, *items)
	if err != nil {
		return err
	}
	cfg, problems := mapping.Parse(cfgDoc)
	if problems.HasErrors() {
		return problems.Err()
	}
	program, err := jqProgram(cfg, "repository")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "configsync-bench-sync-jq-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	input, progFile := filepath.Join(work, "items.ndjson"), filepath.Join(work, "mapping.jq")
	if err := os.WriteFile(progFile, []byte(program), 0o644); err != nil {
		return err
	}
	if err := writeItems(input, *items); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "bench sync: %d repositories, config %s\n", *items, *configPath)

	progressHook := func(string) {}
	// The profile covers one resync when asked: from the end of the one before it
	// (for the full one, from its start, after the server's pages are rendered) to
	// its own end.
	var startProfile, stopProfile func()
	if *cpuProfile != "" {
		before := map[string]string{"full": "full resync of", "unchanged": "full resync:", "changed": "unchanged resync:"}
		after, ok := before[*profilePhase]
		if !ok && *profilePhase != "" {
			return fmt.Errorf("--cpuprofile-phase %q: want full, unchanged or changed", *profilePhase)
		}
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		var once, stopOnce sync.Once
		startProfile = func() {
			once.Do(func() {
				if err := pprof.StartCPUProfile(f); err != nil {
					fmt.Fprintf(env.stderr, "  … CPU profile: %v\n", err)
				}
			})
		}
		stopProfile = func() { stopOnce.Do(pprof.StopCPUProfile) }
		defer stopProfile()
		if after == "" {
			startProfile()
		}
		prev := progressHook
		progressHook = func(msg string) {
			prev(msg)
			switch {
			case after != "" && strings.HasPrefix(msg, after):
				startProfile()
			case *profilePhase != "" && strings.HasPrefix(msg, *profilePhase+" resync:"):
				stopProfile()
			}
		}
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := trace.Start(f); err != nil {
			return err
		}
		defer trace.Stop()
	}
	// On a noisy machine one run can land far from the next: several, each its own jq
	// baseline just before its resyncs, and the median ratio, tell more than one.
	ratios := map[string][]float64{}
	for run := 1; run <= *runs; run++ {
		if *runs > 1 {
			fmt.Fprintf(env.stdout, "run %d of %d\n", run, *runs)
		}
		jqRun, err := timeProcess(ctx, filepath.Join(work, "jq.out"), jqBin, "-c", "-f", progFile, input)
		if err != nil {
			return fmt.Errorf("running jq: %w", err)
		}
		if run == *runs {
			_ = os.Remove(input) // gigabytes at a million items
		}
		fmt.Fprintf(env.stdout, "  %-22s %8.2fs  %9.0f items/s  peak RSS %4d MiB (mapping only, %s)  CPU %.2fs\n", "jq baseline",
			jqRun.wall.Seconds(), float64(*items)/jqRun.wall.Seconds(), jqRun.maxRSS>>20, jqVersion(jqBin), jqRun.cpu.Seconds())
		res, err := benchmark.Run(ctx, benchmark.Options{Items: *items, RedisURL: *redisURL, ConfigPath: *configPath, LatencySamples: *latencySamples,
			Progress: func(s string) {
				fmt.Fprintf(env.stderr, "  … %s\n", s)
				if *memProfile != "" && run == 1 && strings.HasPrefix(s, "full resync:") {
					if err := writeHeapProfile(*memProfile); err != nil {
						fmt.Fprintf(env.stderr, "  … heap profile: %v\n", err)
					}
				}
				progressHook(s)
			}})
		if res != nil {
			for _, p := range res.Phases {
				n := p.Counts.Fetched
				ratio := p.Wall.Seconds() / jqRun.wall.Seconds()
				ratios[p.Name] = append(ratios[p.Name], ratio)
				fmt.Fprintf(env.stdout, "  %-22s %8.2fs  %9.0f items/s  peak RSS %4d MiB  Redis commands %8d  upserted %d deleted %d unchanged %d  time/jq %.2f  CPU %.2fs + Redis %.2fs\n",
					"configsync "+p.Name, p.Wall.Seconds(), p.EntitiesPerSecond(n), p.PeakRSS>>20, p.RedisCommands,
					p.Counts.Upserted, p.Counts.Deleted, p.Counts.Unchanged, ratio, p.CPU.Seconds(), p.RedisCPU.Seconds())
			}
			if len(res.Latencies) > 0 {
				fmt.Fprintf(env.stdout, "  config.patched → run running: median %v of %d (min %v, max %v)\n",
					res.MedianLatency(), len(res.Latencies), minD(res.Latencies), maxD(res.Latencies))
			}
			if !res.PeakRSSReset {
				fmt.Fprintln(env.stdout, "  (peak RSS could not be reset between resyncs: each is the peak so far)")
			}
		}
		if err != nil {
			return err
		}
	}
	if *runs > 1 {
		for _, name := range []string{"full", "unchanged", "changed"} {
			r := slices.Sorted(slices.Values(ratios[name]))
			median := (r[(len(r)-1)/2] + r[len(r)/2]) / 2
			fmt.Fprintf(env.stdout, "median time/jq of %d runs: %-9s %.2f (%.2f to %.2f)\n", len(r), name, median, r[0], r[len(r)-1])
		}
	}
	return nil
}

func minD(d []time.Duration) time.Duration { return slices.Min(d) }
func maxD(d []time.Duration) time.Duration { return slices.Max(d) }

// writeHeapProfile writes the live heap, after a collection, to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

package main

import (
	"errors"
	"flag"
	"io"
	"math"
	"runtime/debug"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"192MiB", 192 << 20, true},
		{" 1GiB ", 1 << 30, true},
		{"512KiB", 512 << 10, true},
		{"2TiB", 2 << 40, true},
		{"1000B", 1000, true},
		{"123456", 123456, true},
		{"0", math.MaxInt64, true},
		{"0MiB", math.MaxInt64, true},
		{"", 0, false},
		{"192MB", 0, false},
		{"-1MiB", 0, false},
		{"1.5GiB", 0, false},
		{"MiB", 0, false},
		{"9000000TiB", 0, false},
	} {
		got, err := parseMemoryLimit(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestParseGCPercent(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"400", 400, true},
		{" 100 ", 100, true},
		{"off", -1, true},
		{"OFF", -1, true},
		{"0", 0, false},
		{"-5", 0, false},
		{"lots", 0, false},
		{"", 0, false},
	} {
		got, err := parseGCPercent(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseGCPercent(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestGCSettingsApply checks that the flags set the collector, that GOGC and
// GOMEMLIMIT win over them, that undo restores what was there, and that a bad value
// is a usage error that changes nothing.
func TestGCSettingsApply(t *testing.T) {
	origPercent, origLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(origPercent)
	t.Cleanup(func() { debug.SetGCPercent(origPercent); debug.SetMemoryLimit(origLimit) })

	for _, c := range []struct {
		name        string
		environ     []string
		args        []string
		wantPercent int
		wantLimit   int64
	}{
		{"defaults", nil, nil, defaultGCPercent, 192 << 20},
		{"flags", nil, []string{"--gc-percent", "250", "--memory-limit", "1GiB"}, 250, 1 << 30},
		{"variables", []string{"CONFIGSYNC_GC_PERCENT=off", "CONFIGSYNC_MEMORY_LIMIT=0"}, nil, -1, math.MaxInt64},
		{"runtime's own win", []string{"GOGC=77", "GOMEMLIMIT=1GiB"}, []string{"--gc-percent", "250"}, 77, 99 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			// What the runtime had before: GOGC and GOMEMLIMIT are read at start, so a
			// set variable stands for this state, which apply must leave alone.
			debug.SetGCPercent(77)
			debug.SetMemoryLimit(99 << 20)
			env := &environment{stdout: io.Discard, stderr: io.Discard, environ: c.environ}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			var g gcSettings
			g.register(fs, env)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			undo, err := g.apply(env)
			if err != nil {
				t.Fatal(err)
			}
			percent, limit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1)
			debug.SetGCPercent(percent)
			if percent != c.wantPercent || limit != c.wantLimit {
				t.Errorf("GC percent %d, memory limit %d; want %d, %d", percent, limit, c.wantPercent, c.wantLimit)
			}
			undo()
			percent, limit = debug.SetGCPercent(-1), debug.SetMemoryLimit(-1)
			debug.SetGCPercent(percent)
			if percent != 77 || limit != 99<<20 {
				t.Errorf("after undo: GC percent %d, memory limit %d; want 77, %d", percent, limit, 99<<20)
			}
		})
	}

	for _, args := range [][]string{{"--gc-percent", "0"}, {"--memory-limit", "lots"}} {
		debug.SetGCPercent(77)
		env := &environment{stdout: io.Discard, stderr: io.Discard}
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		var g gcSettings
		g.register(fs, env)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		var ue *usageError
		if _, err := g.apply(env); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
		if p := debug.SetGCPercent(77); p != 77 {
			t.Errorf("%v: GC percent %d after a bad value, want it unchanged (77)", args, p)
		}
	}
}

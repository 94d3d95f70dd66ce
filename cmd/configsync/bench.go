package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/configsync/configsync/benchmark"
	"github.com/configsync/configsync/fakegithub"
	"github.com/configsync/configsync/mapping"
)

func runBench(ctx context.Context, env *environment, args []string) error {
	switch {
	case len(args) > 0 && args[0] == "map":
		return runBenchMap(ctx, env, args[1:])
	case len(args) > 0 && args[0] == "sync":
		return runBenchSync(ctx, env, args[1:])
	case len(args) > 0 && args[0] == "gen":
		return runBenchGen(env, args[1:])
	}
	return &usageError{"usage: configsync bench map|gen|sync [flags] (see docs/benchmarks.md)"}
}

// runBenchGen writes GitHub-like repositories as NDJSON to standard output, to feed
// `configsync map --input -` through a pipe with inputs larger than the disk.
func runBenchGen(env *environment, args []string) error {
	fs := newFlags("bench gen", env.stderr)
	items := fs.Int("items", 200_000, "repositories to write")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	w := bufio.NewWriterSize(env.stdout, 1<<20)
	if err := fakegithub.WriteRepositoriesNDJSON(w, *items, fakegithub.RepositoryOptions{}); err != nil {
		return err
	}
	return w.Flush()
}

// runBenchMap times `configsync map` against the jq CLI computing the same entities
// from the same NDJSON file, each a separate process, and checks that both printed
// the same entities.
func runBenchMap(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("bench map", env.stderr)
	items := fs.Int("items", 200_000, "GitHub-like repositories to generate")
	configPath := fs.String("config", "../shared/compat/ocean-integrations/github/port-app-config.yml", "config whose resource is mapped")
	kind := fs.String("kind", "repository", "the resource kind to map")
	dir := fs.String("dir", "", "where to write the input and outputs (default: a temporary folder, removed after)")
	jqPath := fs.String("jq", "jq", "the jq CLI to compare with")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	jqBin, err := exec.LookPath(*jqPath)
	if err != nil {
		return fmt.Errorf("the jq CLI is the baseline and was not found (apt-get install jq): %w", err)
	}
	doc, err := os.ReadFile(*configPath)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	cfg, problems := mapping.Parse(doc)
	if problems.HasErrors() {
		return problems.Err()
	}
	program, err := jqProgram(cfg, *kind)
	if err != nil {
		return err
	}
	work := *dir
	if work == "" {
		if work, err = os.MkdirTemp("", "configsync-bench-"); err != nil {
			return fmt.Errorf("making a work folder: %w", err)
		}
		defer os.RemoveAll(work)
	}
	input := filepath.Join(work, "items.ndjson")
	progFile := filepath.Join(work, "mapping.jq")
	if err := os.WriteFile(progFile, []byte(program), 0o644); err != nil {
		return fmt.Errorf("writing the jq program: %w", err)
	}
	if err := writeItems(input, *items); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the configsync binary: %w", err)
	}
	fmt.Fprintf(env.stdout, "bench map: %d items (%s) of kind %q from %s\n", *items, fileSize(input), *kind, *configPath)

	jqOut := filepath.Join(work, "jq.out")
	jqRun, err := timeProcess(ctx, jqOut, jqBin, "-c", "-f", progFile, input)
	if err != nil {
		return fmt.Errorf("running jq: %w", err)
	}
	csOut := filepath.Join(work, "configsync.out")
	csRun, err := timeProcess(ctx, csOut, self, "map", "--config", *configPath, "--kind", *kind, "--input", input)
	if err != nil {
		return fmt.Errorf("running configsync map: %w", err)
	}
	same := sameEntities(jqOut, csOut)
	for _, r := range []struct {
		name string
		run  processRun
	}{{"jq " + jqVersion(jqBin), jqRun}, {"configsync map", csRun}} {
		fmt.Fprintf(env.stdout, "  %-16s %8.2fs  %9.0f items/s  peak RSS %4d MiB\n", r.name, r.run.wall.Seconds(), float64(*items)/r.run.wall.Seconds(), r.run.maxRSS>>20)
	}
	fmt.Fprintf(env.stdout, "  throughput ratio configsync/jq: %.1fx; entities identical: %v (%d lines)\n", jqRun.wall.Seconds()/csRun.wall.Seconds(), same == nil, csRun.lines)
	if same != nil {
		return same
	}
	return nil
}

// jqProgram writes the resource's mapping as one jq program that prints the entities
// `configsync map` prints, for configs whose fields are all jq (no search queries).
func jqProgram(cfg *mapping.Config, kind string) (string, error) {
	var rs []mapping.Resource
	for _, r := range cfg.Resources {
		if r.Kind == kind {
			rs = append(rs, r)
		}
	}
	if len(rs) != 1 || len(rs[0].Port.Mappings) != 1 || rs[0].Port.ItemsToParse != nil {
		return "", fmt.Errorf("bench map needs exactly one resource of kind %q with one mapping and no itemsToParse", kind)
	}
	r, m := rs[0], rs[0].Port.Mappings[0]
	if m.Identifier.Expr == nil || m.Team != nil {
		return "", errors.New("bench map does not translate search queries or team")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "select(%s) | {identifier: (%s), title: (%s), blueprint: (%s)", r.Selector.Query.Src, m.Identifier.Expr.Src, orNull(m.Title), m.Blueprint.Src)
	if m.Icon != nil {
		fmt.Fprintf(&b, ", icon: (%s)", m.Icon.Src)
	}
	b.WriteString(", properties: {")
	for i, p := range m.Properties {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: (%s)", p.Name, p.Expr.Src)
	}
	b.WriteString("}, relations: {")
	for i, rel := range m.Relations {
		if rel.Value.Expr == nil {
			return "", errors.New("bench map does not translate search queries")
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: (%s)", rel.Name, rel.Value.Expr.Src)
	}
	b.WriteString("}}\n")
	return b.String(), nil
}

func orNull(e *mapping.Expr) string {
	if e == nil {
		return "null"
	}
	return e.Src
}

func writeItems(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("creating the input: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := fakegithub.WriteRepositoriesNDJSON(w, n, fakegithub.RepositoryOptions{}); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing the input: %w", err)
	}
	return f.Close()
}

type processRun struct {
	wall   time.Duration
	cpu    time.Duration // user and system
	maxRSS int64
	lines  int
}

// timeProcess runs a command with its standard output in a file, and returns its wall
// time and peak resident memory.
func timeProcess(ctx context.Context, outPath, name string, args ...string) (processRun, error) {
	out, err := os.Create(outPath)
	if err != nil {
		return processRun{}, fmt.Errorf("creating %s: %w", outPath, err)
	}
	defer out.Close()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = out, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return processRun{}, fmt.Errorf("starting %s: %w", name, err)
	}
	// The peak RSS is the child's VmHWM, read every 10 ms while it runs. Its rusage
	// ru_maxrss would be wrong: Go starts a child sharing this process's memory until
	// exec (vfork), and Linux keeps that memory's high-water mark in the child's
	// maxrss, so a child of a 200 MiB benchmark reported 200 MiB whatever it used.
	done := make(chan struct{})
	hwm := make(chan int64, 1)
	go func() {
		var peak int64
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, benchmark.PeakRSS(cmd.Process.Pid))
			select {
			case <-done:
				hwm <- peak
				return
			case <-tick.C:
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	peak := <-hwm
	if err != nil {
		return processRun{}, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	run := processRun{wall: time.Since(start), maxRSS: peak}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		run.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		if peak == 0 { // no /proc: the rusage figure, high as it may be
			run.maxRSS = ru.Maxrss << 10
		}
	}
	if _, err := out.Seek(0, io.SeekStart); err == nil {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			run.lines++
		}
	}
	return run, nil
}

// sameEntities compares two files of JSON lines value by value (key order and number
// spelling aside).
func sameEntities(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	da, db := json.NewDecoder(bufio.NewReader(fa)), json.NewDecoder(bufio.NewReader(fb))
	da.UseNumber()
	db.UseNumber()
	for line := 1; ; line++ {
		var va, vb any
		ea, eb := da.Decode(&va), db.Decode(&vb)
		if ea == io.EOF && eb == io.EOF {
			return nil
		}
		if ea != nil || eb != nil {
			return fmt.Errorf("outputs differ in length or fail to parse at line %d: %v / %v", line, ea, eb)
		}
		if !reflect.DeepEqual(va, vb) {
			return fmt.Errorf("outputs differ at line %d:\n  jq:         %v\n  configsync: %v", line, va, vb)
		}
	}
}

func jqVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func fileSize(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.0f MiB", float64(st.Size())/(1<<20))
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/configsync/configsync/jsonstream"
	"github.com/configsync/configsync/mapping"
)

func runMap(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("map", env.stderr)
	configPath := fs.String("config", "", "integration config, JSON or YAML (required)")
	inputPath := fs.String("input", "-", "items: a JSON array, one JSON object, or NDJSON; - reads standard input")
	kind := fs.String("kind", "", "apply the resources of this kind (may be left out when the config has one kind)")
	strict := fs.Bool("strict", false, "exit 1 when any item error or field warning occurred")
	workers := fs.Int("workers", 0, "goroutines mapping in parallel (0: one per CPU)")
	timeout := fs.Duration("item-timeout", mapping.DefaultItemTimeout, "time limit for evaluating one item")
	var envAllow listFlag
	fs.Var(&envAllow, "env-allow", "environment variables jq's env/$ENV may see (names, prefix*, or globs; comma-separated, repeatable; default none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" {
		return &usageError{"--config is required"}
	}
	opts := mapping.Options{ItemTimeout: *timeout, Workers: *workers, Environ: env.environ, EnvAllow: envAllow}
	_, prog, problems, err := loadConfig(*configPath, opts)
	if err != nil {
		return err
	}
	if prog == nil {
		for _, p := range problems.Errors() {
			fmt.Fprintln(env.stderr, p.InFile(*configPath))
		}
		return fmt.Errorf("%s is not a valid config (see configsync validate)", *configPath)
	}
	resources, err := pickResources(prog, *kind)
	if err != nil {
		return err
	}

	in := env.stdin
	if *inputPath != "-" {
		f, err := os.Open(*inputPath)
		if err != nil {
			return fmt.Errorf("opening input: %w", err)
		}
		defer f.Close()
		in = f
	}
	reader := jsonstream.NewReader(in, jsonstream.Options{})
	out := bufio.NewWriterSize(env.stdout, 256<<10)
	errOut := bufio.NewWriter(env.stderr)
	defer errOut.Flush()

	var sum struct{ items, entities, dropped, filtered, errors, warnings int }
	start := time.Now()
	runErr := prog.Run(ctx, reader, mapping.RunOptions{
		Resources: resources,
		Recoverable: func(err error) bool {
			var se *jsonstream.SyntaxError
			return errors.As(err, &se) && reader.Format() == jsonstream.Sequence
		},
		Transform: func(r *mapping.ItemResult) {
			for i := range r.Entities {
				r.Output = r.Entities[i].AppendJSON(r.Output)
				r.Output = append(r.Output, '\n')
			}
		},
	}, func(r *mapping.ItemResult) error {
		sum.items++
		sum.entities += len(r.Entities)
		sum.dropped += r.Dropped
		sum.filtered += r.Filtered
		if r.ReadErr != nil {
			sum.errors++
			fmt.Fprintf(errOut, "item %d: skipped: %v\n", r.Index, r.ReadErr)
		}
		for _, is := range r.Issues {
			if is.Skipped {
				sum.errors++
				fmt.Fprintf(errOut, "item %d: error: %v\n", r.Index, is)
			} else {
				sum.warnings++
				fmt.Fprintf(errOut, "item %d: warning: %v\n", r.Index, is)
			}
		}
		if _, err := out.Write(r.Output); err != nil {
			return fmt.Errorf("writing entities: %w", err)
		}
		return nil
	})
	if err := out.Flush(); err != nil && runErr == nil {
		runErr = fmt.Errorf("writing entities: %w", err)
	}
	elapsed := time.Since(start)
	rate := float64(sum.items) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(errOut, "map: %d items, %d entities, %d dropped, %d filtered, %d errors, %d warnings in %s (%.0f items/s)\n",
		sum.items, sum.entities, sum.dropped, sum.filtered, sum.errors, sum.warnings, elapsed.Round(time.Millisecond), rate)
	if runErr != nil {
		if errors.Is(runErr, io.ErrUnexpectedEOF) || ctx.Err() == nil {
			return fmt.Errorf("reading input after item %d: %w", sum.items, runErr)
		}
		return runErr
	}
	if *strict && sum.errors+sum.warnings > 0 {
		return exitCode(1)
	}
	return nil
}

// pickResources selects the resources of kind, or of the config's only kind.
func pickResources(prog *mapping.Program, kind string) ([]*mapping.ResourceProgram, error) {
	kinds := prog.Kinds()
	if kind == "" {
		if len(kinds) != 1 {
			return nil, &usageError{fmt.Sprintf("the config has %d kinds (%s): choose one with --kind", len(kinds), strings.Join(kinds, ", "))}
		}
		kind = kinds[0]
	}
	rs := prog.ResourcesOfKind(kind)
	if len(rs) == 0 {
		return nil, &usageError{fmt.Sprintf("the config has no resource of kind %q (it has: %s)", kind, strings.Join(kinds, ", "))}
	}
	return rs, nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// newFlags returns a flag set that reports mistakes as usage errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("configsync "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; -h prints the flags and ends the command successfully.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitCode(0)
		}
		return exitCode(2)
	}
	if fs.NArg() > 0 {
		return &usageError{"unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	return nil
}

// envDuration declares a duration flag whose default an environment variable may set,
// so that every setting of a service role can come from its environment (containers,
// Kubernetes). The returned check reports a variable that is not a duration; call it
// after parsing.
func envDuration(fs *flag.FlagSet, env *environment, p *time.Duration, name, key string, def time.Duration, usage string) (check func() error) {
	var bad error
	if v, ok := env.lookup(key); ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			bad = &usageError{fmt.Sprintf("%s=%q is not a duration (such as 30s or 1m)", key, v)}
		} else {
			def = d
		}
	}
	fs.DurationVar(p, name, def, usage+" ("+key+")")
	return func() error { return bad }
}

// listFlag is a comma-separated, repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

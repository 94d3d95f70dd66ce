// Command configsync is the one binary of configsync: each role (dev, validate, map,
// and the service roles to come) is a subcommand.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitCode carries a process exit status out of a subcommand without printing.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError is a command-line mistake: printed with the usage and exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, env *environment, args []string) error
}

// environment is what main hands to subcommands explicitly: streams and the process
// environment, so that commands read no globals and tests can run them in-process.
type environment struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
}

func commands() []command {
	return []command{
		{"dev", "run configsync in one process on embedded defaults", runDev},
		{"validate", "check an integration config (and its blueprints)", runValidate},
		{"map", "apply a config's mappings to items and print the entities", runMap},
		{"api", "serve the control-plane HTTP API", runAPI},
		{"worker", "consume events and run syncs (several may run at once)", runWorker},
		{"scheduler", "request resyncs of integrations whose resyncInterval is due", runScheduler},
		{"apply", "send blueprints and integrations declared in YAML files to the API", runApply},
		{"resync", "request a resync over the API (--wait follows it)", runResync},
		{"publish", "publish an event: patch, resync or resources", runPublish},
		{"catalog", "read the catalog: 'catalog list' prints a blueprint's entities", runCatalog},
		{"runs", "print an integration's runs", runRuns},
		{"bench", "benchmarks: 'bench map' times map against the jq CLI", runBench},
		{"token", "mint an API token with CONFIGSYNC_JWT_SECRET", runToken},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := &environment{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ()}
	code := dispatch(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}

// dispatch runs a subcommand and turns its error into an exit status.
func dispatch(ctx context.Context, env *environment, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		var code exitCode
		var ue *usageError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &code):
			return int(code)
		case errors.As(err, &ue):
			fmt.Fprintf(env.stderr, "configsync %s: %s\n", c.name, ue.msg)
			return 2
		default:
			fmt.Fprintf(env.stderr, "configsync %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.stderr, "configsync: unknown command %q\n\n", args[0])
	usage(env.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: configsync <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'configsync <command> -h' for a command's flags.")
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func runVersion(_ context.Context, env *environment, _ []string) error {
	fmt.Fprintf(env.stdout, "configsync %s\n", version)
	return nil
}

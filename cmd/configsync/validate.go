package main

import (
	"context"
	"fmt"
	"os"

	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/mapping"
)

func runValidate(_ context.Context, env *environment, args []string) error {
	fs := newFlags("validate", env.stderr)
	configPath := fs.String("config", "", "integration config, JSON or YAML (required)")
	blueprintsPath := fs.String("blueprints", "", "blueprints.json (an array of blueprints) to check blueprints, properties and relations against")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *configPath == "" {
		return &usageError{"--config is required"}
	}
	cfg, _, problems, err := loadConfig(*configPath, mapping.Options{Environ: env.environ})
	if err != nil {
		return err
	}
	if *blueprintsPath != "" && cfg != nil {
		data, err := os.ReadFile(*blueprintsPath)
		if err != nil {
			return fmt.Errorf("reading blueprints: %w", err)
		}
		bps, err := blueprint.Parse(data)
		if err != nil {
			return fmt.Errorf("blueprints %s: %w", *blueprintsPath, err)
		}
		problems = append(problems, mapping.CheckBlueprints(cfg, blueprint.NewSet(bps))...)
	}
	errs := 0
	for _, p := range problems {
		fmt.Fprintln(env.stdout, p.InFile(*configPath))
		if p.Severity == mapping.SeverityError {
			errs++
		}
	}
	if errs > 0 {
		fmt.Fprintf(env.stdout, "%s: invalid: %d error(s), %d warning(s)\n", *configPath, errs, len(problems)-errs)
		return exitCode(1)
	}
	fmt.Fprintf(env.stdout, "%s: valid (%d warning(s))\n", *configPath, len(problems))
	return nil
}

// loadConfig reads, parses and compiles a config file. The config is nil when the
// document could not be read as one, the program when any problem is an error.
func loadConfig(path string, opts mapping.Options) (*mapping.Config, *mapping.Program, mapping.Problems, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, problems := mapping.Parse(data)
	if cfg == nil {
		return nil, nil, problems, nil
	}
	prog, compileProblems := mapping.Compile(cfg, opts)
	problems = append(problems, compileProblems...)
	if problems.HasErrors() {
		return cfg, nil, problems, nil
	}
	return cfg, prog, problems, nil
}

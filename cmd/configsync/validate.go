package main

import (
	"context"
	"fmt"
	"os"

	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/source/httpsource"
)

func runValidate(_ context.Context, env *environment, args []string) error {
	fs := newFlags("validate", env.stderr)
	configPath := fs.String("config", "", "integration config, JSON or YAML (required)")
	blueprintsPath := fs.String("blueprints", "", "blueprints.json (an array of blueprints) to check blueprints, properties and relations against")
	sourceType := fs.String("source-type", "", "check each resource's selector fields for this source type too (http)")
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
	if *sourceType != "" && cfg != nil {
		sp, err := selectorProblems(*sourceType, cfg)
		if err != nil {
			return err
		}
		problems = append(problems, sp...)
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

// selectorProblems checks the selector fields a source type reads: fields it does not
// know are warnings (configs written for other integrations carry some), fields it
// cannot use are errors.
func selectorProblems(sourceType string, cfg *mapping.Config) (mapping.Problems, error) {
	if sourceType != httpsource.TypeID {
		return nil, &usageError{fmt.Sprintf("--source-type %q: only %q selectors can be checked", sourceType, httpsource.TypeID)}
	}
	var ps mapping.Problems
	for i, r := range cfg.Resources {
		ignored, err := httpsource.CheckSelector(r.Kind, r.Selector.Extra, nil)
		for _, f := range ignored {
			ps = append(ps, mapping.Problem{Severity: mapping.SeverityWarning, Resource: i, Kind: r.Kind, Path: r.Path + ".selector." + f,
				Message: "not a field of the http source; ignored"})
		}
		if err != nil {
			ps = append(ps, mapping.Problem{Severity: mapping.SeverityError, Resource: i, Kind: r.Kind, Path: r.Path + ".selector", Message: err.Error()})
		}
	}
	return ps, nil
}

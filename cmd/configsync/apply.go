package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	"github.com/configsync/configsync/manifest"
)

// runApply sends the blueprints and integrations declared in YAML files to the API.
// It is idempotent: each is PUT, which creates or replaces it (an integration's config
// becomes its next version, which starts a run).
func runApply(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("apply", env.stderr)
	var cf clientFlags
	cf.register(fs, env)
	path := fs.String("f", "", "a YAML file or a folder of them (documents: kind: blueprint|integration, tenant, spec)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return &usageError{"-f FILE|DIR is required"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	docs, err := readManifests(*path)
	if err != nil {
		return err
	}
	// Blueprints first: configs refer to them.
	for _, pass := range []string{"blueprint", "integration"} {
		for _, d := range docs {
			if d.Kind != pass {
				continue
			}
			id, _ := d.Spec["identifier"].(string)
			route := "/v1/tenants/" + url.PathEscape(d.Tenant) + "/blueprints/" + url.PathEscape(id)
			if pass == "integration" {
				id, _ = d.Spec["id"].(string)
				route = "/v1/tenants/" + url.PathEscape(d.Tenant) + "/integrations/" + url.PathEscape(id)
			}
			if id == "" {
				return fmt.Errorf("%s: the spec has no %s", d.Where, map[string]string{"blueprint": "identifier", "integration": "id"}[pass])
			}
			status, err := c.do(ctx, http.MethodPut, route, d.Spec, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", d.Where, err)
			}
			verb := "updated"
			if status == http.StatusCreated {
				verb = "created"
			}
			fmt.Fprintf(env.stdout, "%s %s/%s %s\n", pass, d.Tenant, id, verb)
		}
	}
	return nil
}

func readManifests(path string) ([]manifest.Document, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return manifest.ReadDir(path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return manifest.Parse(b, filepath.Base(path))
}

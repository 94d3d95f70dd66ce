// Package manifest reads and applies declarations of blueprints and integrations:
// YAML documents of the form {kind: blueprint|integration, tenant: T, spec: {...}},
// where spec is the body the API takes. configsync dev --load and --demo use it.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/secrets"
)

// Document is one declaration.
type Document struct {
	Kind   string         `yaml:"kind"`
	Tenant string         `yaml:"tenant"`
	Spec   map[string]any `yaml:"spec"`
	// Dir is the folder of the file it came from: a file source's relative root is
	// taken from there.
	Dir string `yaml:"-"`
	// Where names the file and document index for messages.
	Where string `yaml:"-"`
}

// IntegrationSpec is the body that creates an integration.
type IntegrationSpec struct {
	ID             string              `json:"id"`
	DisplayName    string              `json:"displayName"`
	Description    string              `json:"description,omitempty"`
	Type           string              `json:"type"`
	Parameters     map[string]any      `json:"parameters"`
	Credentials    secrets.Credentials `json:"credentials,omitempty"`
	Config         json.RawMessage     `json:"config,omitempty"`
	ResyncInterval string              `json:"resyncInterval,omitempty"`
	Tags           []string            `json:"tags,omitempty"`
}

// ReadDir reads every .yaml/.yml file of a folder, in name order.
func ReadDir(dir string) ([]Document, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("reading manifests in %s: %w", dir, err)
	}
	var docs []Document
	var names []string
	fsys := os.DirFS(abs)
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("reading manifests in %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("reading manifest %s: %w", name, err)
		}
		ds, err := Parse(b, name)
		if err != nil {
			return nil, err
		}
		for i := range ds {
			ds[i].Dir = abs
		}
		docs = append(docs, ds...)
	}
	return docs, nil
}

// Parse reads the documents of one file.
func Parse(b []byte, where string) ([]Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []Document
	for i := 0; ; i++ {
		var d Document
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s document %d: %w", where, i+1, err)
		}
		d.Where = fmt.Sprintf("%s document %d", where, i+1)
		if d.Kind != "blueprint" && d.Kind != "integration" {
			return nil, fmt.Errorf("%s: kind must be blueprint or integration, got %q", d.Where, d.Kind)
		}
		if !integration.ValidID(d.Tenant) {
			return nil, fmt.Errorf("%s: tenant %q must match %s", d.Where, d.Tenant, integration.IDPattern)
		}
		if d.Spec == nil {
			return nil, fmt.Errorf("%s: spec is required", d.Where)
		}
		docs = append(docs, d)
	}
}

// Blueprint decodes a blueprint document's spec.
func (d Document) Blueprint() (blueprint.Blueprint, error) {
	b, err := json.Marshal(d.Spec)
	if err != nil {
		return blueprint.Blueprint{}, fmt.Errorf("%s: %w", d.Where, err)
	}
	bps, err := blueprint.Parse(b)
	if err != nil {
		return blueprint.Blueprint{}, fmt.Errorf("%s: %w", d.Where, err)
	}
	return bps[0], nil
}

// Integration decodes an integration document's spec.
func (d Document) Integration() (IntegrationSpec, error) {
	b, err := json.Marshal(d.Spec)
	if err != nil {
		return IntegrationSpec{}, fmt.Errorf("%s: %w", d.Where, err)
	}
	var s IntegrationSpec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return IntegrationSpec{}, fmt.Errorf("%s: %w", d.Where, err)
	}
	if s.Parameters == nil {
		s.Parameters = map[string]any{}
	}
	return s, nil
}

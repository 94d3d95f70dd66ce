package manifest

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/mapping"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/source"
)

// Deps are what applying declarations writes to.
type Deps struct {
	Catalog      *catalog.Catalog
	Integrations *integration.Store
	Sources      *source.Registry
	Queue        *queue.Queue
	Mapping      mapping.Options
}

// Applied says what one declaration did.
type Applied struct {
	Kind, Tenant, ID string
	// ConfigVersion is the config version stored for an integration (0: none given).
	ConfigVersion int64
	// Event is the id of the config.patched event that starts the first run.
	Event string
}

// Apply writes the declarations: blueprints first (integrations' configs refer to
// them), then integrations, each config validated like `configsync validate`, stored
// as the next version, and announced with a config.patched event, which starts a run.
// A file source's relative root is taken from the folder of the document.
func Apply(ctx context.Context, d Deps, docs []Document) ([]Applied, error) {
	var out []Applied
	for _, doc := range docs {
		if doc.Kind != "blueprint" {
			continue
		}
		bp, err := doc.Blueprint()
		if err != nil {
			return out, err
		}
		if err := d.Catalog.PutBlueprint(ctx, doc.Tenant, bp); err != nil {
			return out, fmt.Errorf("%s: %w", doc.Where, err)
		}
		out = append(out, Applied{Kind: "blueprint", Tenant: doc.Tenant, ID: bp.Identifier})
	}
	for _, doc := range docs {
		if doc.Kind != "integration" {
			continue
		}
		a, err := applyIntegration(ctx, d, doc)
		if err != nil {
			return out, err
		}
		out = append(out, a)
	}
	return out, nil
}

func applyIntegration(ctx context.Context, d Deps, doc Document) (Applied, error) {
	spec, err := doc.Integration()
	if err != nil {
		return Applied{}, err
	}
	if spec.Type == "file" && doc.Dir != "" {
		if root, ok := spec.Parameters["root"].(string); ok && !filepath.IsAbs(root) {
			spec.Parameters["root"] = filepath.Join(doc.Dir, root)
		}
	}
	if err := d.Sources.ValidateParameters(spec.Type, spec.Parameters); err != nil {
		return Applied{}, fmt.Errorf("%s: %w", doc.Where, err)
	}
	var cfgDoc []byte
	if len(spec.Config) > 0 {
		cfg, problems := mapping.Parse(spec.Config)
		if cfg != nil {
			_, cps := mapping.Compile(cfg, d.Mapping)
			problems = append(problems, cps...)
		}
		if err := problems.Err(); err != nil {
			return Applied{}, fmt.Errorf("%s: %w", doc.Where, err)
		}
		cfgDoc = spec.Config
	}
	in := &integration.Integration{
		Tenant: doc.Tenant, ID: spec.ID, DisplayName: spec.DisplayName, Description: spec.Description,
		Type: spec.Type, Parameters: spec.Parameters, ResyncInterval: spec.ResyncInterval, Tags: spec.Tags,
	}
	if _, err := d.Integrations.Put(ctx, in, spec.Credentials); err != nil {
		return Applied{}, fmt.Errorf("%s: %w", doc.Where, err)
	}
	a := Applied{Kind: "integration", Tenant: doc.Tenant, ID: spec.ID}
	if cfgDoc == nil {
		return a, nil
	}
	if a.ConfigVersion, err = d.Integrations.AddConfig(ctx, doc.Tenant, spec.ID, cfgDoc); err != nil {
		return a, fmt.Errorf("%s: %w", doc.Where, err)
	}
	ev, err := queue.NewEnvelope(queue.TypeConfigPatched, doc.Tenant, spec.ID, queue.ConfigPatched{ConfigVersion: a.ConfigVersion})
	if err != nil {
		return a, err
	}
	if err := d.Queue.Publish(ctx, ev); err != nil {
		return a, fmt.Errorf("%s: starting the first run: %w", doc.Where, err)
	}
	a.Event = ev.ID
	return a, nil
}

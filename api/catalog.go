package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/configsync/configsync/blueprint"
	"github.com/configsync/configsync/catalog"
)

// blueprintOf reads a blueprint, answering 404 when it does not exist.
func (s *server) blueprintOf(ctx context.Context, tenant, id string) (*blueprint.Blueprint, error) {
	b, err := s.d.Catalog.GetBlueprint(ctx, tenant, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, errNotFound("blueprint " + quoteShort(id))
	}
	return b, err
}

// listBlueprints pages the tenant's blueprints by identifier.
func (s *server) listBlueprints(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := pageParams(r)
	if err != nil {
		return err
	}
	all, err := s.d.Catalog.ListBlueprints(r.Context(), c.tenant)
	if err != nil {
		return err
	}
	i := sort.Search(len(all), func(i int) bool { return all[i].Identifier > p.cursor })
	all = all[i:]
	next := ""
	if len(all) > p.limit {
		all, next = all[:p.limit], all[p.limit-1].Identifier
	}
	return list(w, "blueprints", all, next)
}

func (s *server) getBlueprint(w http.ResponseWriter, r *http.Request, c *call) error {
	b, err := s.blueprintOf(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

// putBlueprint creates or replaces a blueprint from Port's blueprint object (every
// key kept, those configsync does not use too); 201 or 200 with it. The identifier
// may be left out of the body, or must equal the path's.
func (s *server) putBlueprint(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("id")
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	m, err := members(body)
	if err != nil {
		return err
	}
	if raw, ok := m["identifier"]; ok {
		var got string
		if json.Unmarshal(raw, &got) != nil || got != id {
			return errValidation("identifier must be left out or equal the id in the path",
				[]FieldError{{Field: "identifier", Message: "must be left out or equal the id in the path"}})
		}
	} else {
		m["identifier"], _ = json.Marshal(id)
		if body, err = json.Marshal(m); err != nil {
			return fmt.Errorf("encoding blueprint: %w", err)
		}
	}
	bps, err := blueprint.Parse(body)
	if err != nil {
		return errValidation("the blueprint is not valid", blueprintErrors(err))
	}
	b := bps[0]
	var fields []FieldError
	for name := range b.Relations {
		if strings.Contains(name, catalog.US) {
			fields = append(fields, FieldError{Field: "relations." + name, Message: `relation names may not contain \x1f`})
		}
	}
	if len(fields) > 0 {
		return errValidation("the blueprint is not valid", fields)
	}
	status := http.StatusOK
	old, err := s.d.Catalog.GetBlueprint(r.Context(), c.tenant, id)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		status = http.StatusCreated
	case err != nil:
		return err
	default:
		if err := s.checkRetarget(r.Context(), c.tenant, old, &b); err != nil {
			return err
		}
	}
	if err := s.d.Catalog.PutBlueprint(r.Context(), c.tenant, b); err != nil {
		return err
	}
	stored, err := s.blueprintOf(r.Context(), c.tenant, id)
	if err != nil {
		return err
	}
	return writeJSON(w, status, stored)
}

// checkRetarget refuses (409) a change of a relation's target while entities of the
// blueprint exist, which the catalog would refuse too.
func (s *server) checkRetarget(ctx context.Context, tenant string, old, b *blueprint.Blueprint) error {
	for name, rel := range b.Relations {
		if o, ok := old.Relations[name]; ok && o.Target != rel.Target {
			has, err := s.hasEntities(ctx, tenant, b.Identifier)
			if err != nil {
				return err
			}
			if has {
				return errConflict(fmt.Sprintf("relation %q would change its target from %q to %q while entities of blueprint %q exist; delete them first",
					name, o.Target, rel.Target, b.Identifier))
			}
		}
	}
	return nil
}

func (s *server) hasEntities(ctx context.Context, tenant, bp string) (bool, error) {
	ents, _, err := s.d.Catalog.List(ctx, tenant, bp, "", 1)
	return len(ents) > 0, err
}

// blueprintErrors turns blueprint.Parse's errors into field errors.
func blueprintErrors(err error) []FieldError {
	var out []FieldError
	var walk func(error)
	walk = func(err error) {
		var be *blueprint.Error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &be) {
			out = append(out, FieldError{Field: be.Field, Message: be.Msg})
			return
		}
		out = append(out, FieldError{Message: err.Error()})
	}
	walk(err)
	return out
}

// deleteBlueprint deletes a blueprint; refused (409) while entities of it exist.
func (s *server) deleteBlueprint(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("id")
	if _, err := s.blueprintOf(r.Context(), c.tenant, id); err != nil {
		return err
	}
	refused := func() error {
		return errConflict(fmt.Sprintf("blueprint %q still has entities; delete them first", id))
	}
	if has, err := s.hasEntities(r.Context(), c.tenant, id); err != nil {
		return err
	} else if has {
		return refused()
	}
	if err := s.d.Catalog.DeleteBlueprint(r.Context(), c.tenant, id); err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			return errNotFound("blueprint " + quoteShort(id))
		}
		if has, herr := s.hasEntities(r.Context(), c.tenant, id); herr == nil && has {
			return refused() // an entity arrived in between
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listEntities pages a blueprint's entities by identifier. Each ?filter=NAME=VALUE
// keeps the entities whose property NAME ($identifier and $title too) equals VALUE,
// read as JSON when it is JSON (tier=1, active=true, name="x") and as a string
// otherwise; several filters must all hold.
func (s *server) listEntities(w http.ResponseWriter, r *http.Request, c *call) error {
	bp := r.PathValue("id")
	if _, err := s.blueprintOf(r.Context(), c.tenant, bp); err != nil {
		return err
	}
	p, err := pageParams(r)
	if err != nil {
		return err
	}
	filters := r.URL.Query()["filter"]
	if len(filters) == 0 {
		ents, next, err := s.d.Catalog.List(r.Context(), c.tenant, bp, p.cursor, p.limit)
		if err != nil {
			return err
		}
		return list(w, "entities", ents, next)
	}
	rules := make([]any, 0, len(filters))
	for i, f := range filters {
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return errBadRequest("filter must be NAME=VALUE", FieldError{Field: fmt.Sprintf("filter[%d]", i), Message: "must be NAME=VALUE"})
		}
		var v any = value
		if json.Valid([]byte(value)) {
			_ = json.Unmarshal([]byte(value), &v)
		}
		rules = append(rules, map[string]any{"property": name, "operator": "=", "value": v})
	}
	ids, err := s.d.Catalog.Resolve(r.Context(), c.tenant, bp, map[string]any{"combinator": "and", "rules": rules})
	if err != nil {
		return err
	}
	i := sort.SearchStrings(ids, p.cursor)
	if i < len(ids) && ids[i] == p.cursor {
		i++
	}
	if p.cursor == "" {
		i = 0
	}
	ids = ids[i:]
	next := ""
	if len(ids) > p.limit {
		ids, next = ids[:p.limit], ids[p.limit-1]
	}
	ents := make([]catalog.Entity, 0, len(ids))
	for _, id := range ids {
		e, err := s.d.Catalog.Get(r.Context(), c.tenant, bp, id)
		if errors.Is(err, catalog.ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			return err
		}
		ents = append(ents, *e)
	}
	return list(w, "entities", ents, next)
}

func (s *server) getEntity(w http.ResponseWriter, r *http.Request, c *call) error {
	bp, id := r.PathValue("id"), r.PathValue("identifier")
	e, err := s.d.Catalog.Get(r.Context(), c.tenant, bp, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return errNotFound("entity " + quoteShort(bp+"/"+id))
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

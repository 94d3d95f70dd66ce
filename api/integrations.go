package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/scheduler"
	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"
)

// Limits of an integration body.
const (
	// MaxDisplayName is the most characters of displayName.
	MaxDisplayName = 100
	// MaxDescription is the most characters of description.
	MaxDescription = 500
	// MaxTags is the most tags.
	MaxTags = 50
	// MaxTag is the most characters of one tag.
	MaxTag = 100
	// MinWebhookSecret is the fewest bytes of the webhookSecret credential.
	MinWebhookSecret = 16
)

// WebhookSecretCredential is the credential that keys the HMAC signatures of an
// integration's events (see SignatureHeader).
const WebhookSecretCredential = "webhookSecret"

// integrationFields are the members of an integration body.
var integrationFields = []string{"id", "displayName", "description", "type", "parameters", "credentials", "config", "resyncInterval", "tags"}

// credentialSet is how a response shows a credential: its name and this, never its
// value.
const credentialSet = "set"

// integrationView is an integration as the API answers it.
type integrationView struct {
	Tenant      string         `json:"tenant"`
	ID          string         `json:"id"`
	DisplayName string         `json:"displayName"`
	Description string         `json:"description"`
	Type        string         `json:"type"`
	Parameters  map[string]any `json:"parameters"`
	// Credentials maps each credential name set to "set".
	Credentials    map[string]string `json:"credentials"`
	ResyncInterval string            `json:"resyncInterval"`
	Tags           []string          `json:"tags"`
	ConfigVersion  int64             `json:"configVersion"`
	// Config is the newest config document as it was given (single-integration
	// answers only).
	Config    json.RawMessage `json:"config,omitempty"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// view builds the answer for in: credential names only, secret parameters redacted,
// and the newest config when withConfig.
func (s *server) view(ctx context.Context, in *integration.Integration, withConfig bool) (*integrationView, error) {
	v := &integrationView{
		Tenant: in.Tenant, ID: in.ID, DisplayName: in.DisplayName, Description: in.Description, Type: in.Type,
		Parameters: maps.Clone(in.Parameters), Credentials: map[string]string{}, ResyncInterval: in.ResyncInterval,
		Tags: in.Tags, ConfigVersion: in.ConfigVersion, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt,
	}
	if v.Parameters == nil {
		v.Parameters = map[string]any{}
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	if t, ok := s.d.Sources.Get(in.Type); ok {
		for _, p := range t.Parameters {
			if p.Secret && v.Parameters[p.Name] != nil {
				v.Parameters[p.Name] = secrets.Redacted
			}
		}
	}
	if in.HasCredentials {
		creds, err := s.d.Integrations.Credentials(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, err
		}
		for name := range creds {
			v.Credentials[name] = credentialSet
		}
		clear(creds)
	}
	if withConfig && in.ConfigVersion > 0 {
		doc, err := s.d.Integrations.Config(ctx, in.Tenant, in.ID, in.ConfigVersion)
		if err != nil && !errors.Is(err, integration.ErrNotFound) {
			return nil, err
		}
		v.Config = doc
	}
	return v, nil
}

// integration reads an integration, answering 404 when it does not exist.
func (s *server) integration(ctx context.Context, tenant, id string) (*integration.Integration, error) {
	if !integration.ValidID(id) {
		return nil, errNotFound("integration " + quoteShort(id))
	}
	in, err := s.d.Integrations.Get(ctx, tenant, id)
	if errors.Is(err, integration.ErrNotFound) {
		return nil, errNotFound("integration " + quoteShort(id))
	}
	return in, err
}

// integrationInput is a checked integration body.
type integrationInput struct {
	in *integration.Integration
	// creds are the credentials given; nil when the body left them out (keep).
	creds secrets.Credentials
	// config is the config document given; nil when left out.
	config []byte
	// warns are the config's warnings.
	warns []FieldError
}

// parseIntegration reads and checks an integration body (create and PUT). pathID is
// the id in the path ("" on create). Every problem is collected into one 422.
func (s *server) parseIntegration(ctx context.Context, w http.ResponseWriter, r *http.Request, tenant, pathID string) (*integrationInput, error) {
	m, body, err := s.object(w, r, false, integrationFields...)
	if err != nil {
		return nil, err
	}
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }
	str := func(field string, required bool) (string, bool) {
		raw, ok := m[field]
		if !ok || isNull(raw) {
			if required {
				bad(field, "required")
			}
			return "", false
		}
		var v string
		if json.Unmarshal(raw, &v) != nil {
			bad(field, "must be a string, not "+jsonKind(raw))
			return "", false
		}
		return v, true
	}
	in := &integration.Integration{Tenant: tenant}
	if id, ok := str("id", false); ok {
		switch {
		case pathID != "" && id != pathID:
			bad("id", "must be left out or equal the id in the path")
		case !integration.ValidID(id):
			bad("id", "must match "+integration.IDPattern.String())
		}
		in.ID = id
	}
	if pathID != "" {
		in.ID = pathID
	}
	if v, ok := str("displayName", true); ok {
		switch n := utf8.RuneCountInString(v); {
		case strings.TrimSpace(v) == "":
			bad("displayName", "required, must not be blank")
		case n > MaxDisplayName:
			bad("displayName", fmt.Sprintf("is %d characters, more than the %d allowed", n, MaxDisplayName))
		}
		in.DisplayName = v
	}
	if v, ok := str("description", false); ok {
		if n := utf8.RuneCountInString(v); n > MaxDescription {
			bad("description", fmt.Sprintf("is %d characters, more than the %d allowed", n, MaxDescription))
		}
		in.Description = v
	}
	var typ source.Type
	typeOK := false
	if v, ok := str("type", true); ok {
		if typ, typeOK = s.d.Sources.Get(v); !typeOK {
			var ids []string
			for _, t := range s.d.Sources.Types() {
				ids = append(ids, t.ID)
			}
			bad("type", "unknown source type (known: "+strings.Join(ids, ", ")+")")
		}
		in.Type = v
	}
	in.Parameters = map[string]any{}
	if raw := m["parameters"]; !isNull(raw) {
		if jsonKind(raw) != "an object" || decodeNumbers(raw, &in.Parameters) != nil {
			bad("parameters", "must be an object, not "+jsonKind(raw))
			in.Parameters = map[string]any{}
		} else if typeOK {
			var ve *source.ValidationError
			if err := s.d.Sources.ValidateParameters(typ.ID, in.Parameters); errors.As(err, &ve) {
				for _, p := range ve.Problems {
					bad("parameters."+p.Parameter, p.Message)
				}
			} else if err != nil {
				return nil, err
			}
		}
	} else if typeOK {
		var ve *source.ValidationError
		if errors.As(s.d.Sources.ValidateParameters(typ.ID, nil), &ve) {
			for _, p := range ve.Problems {
				bad("parameters."+p.Parameter, p.Message)
			}
		}
	}
	var creds secrets.Credentials
	if raw := m["credentials"]; !isNull(raw) {
		var obj map[string]json.RawMessage
		if jsonKind(raw) != "an object" || json.Unmarshal(raw, &obj) != nil {
			bad("credentials", "must be an object of strings, not "+jsonKind(raw))
		} else {
			creds = secrets.Credentials{}
			for _, name := range slices.Sorted(maps.Keys(obj)) {
				var v string
				switch {
				case name == "":
					bad("credentials", "a credential name is empty")
				case json.Unmarshal(obj[name], &v) != nil:
					bad("credentials."+name, "must be a string, not "+jsonKind(obj[name]))
				case name == WebhookSecretCredential && len(v) < MinWebhookSecret:
					bad("credentials."+name, fmt.Sprintf("must be at least %d bytes", MinWebhookSecret))
				default:
					creds[name] = v
				}
			}
		}
	}
	if raw, ok := m["resyncInterval"]; ok && !isNull(raw) {
		var v string
		if jsonKind(raw) == "a number" {
			var n int64
			if json.Unmarshal(raw, &n) != nil {
				bad("resyncInterval", "must be a whole number of minutes or a duration string")
			}
			v = strconv.FormatInt(n, 10)
		} else if json.Unmarshal(raw, &v) != nil {
			bad("resyncInterval", "must be a duration string such as 15m, or whole minutes, not "+jsonKind(raw))
		}
		if v != "" {
			if _, err := scheduler.ParseInterval(v); err != nil {
				bad("resyncInterval", err.Error())
			}
		}
		in.ResyncInterval = v
	}
	if raw := m["tags"]; !isNull(raw) {
		if json.Unmarshal(raw, &in.Tags) != nil {
			bad("tags", "must be an array of strings, not "+jsonKind(raw))
		} else if len(in.Tags) > MaxTags {
			bad("tags", fmt.Sprintf("has %d tags, more than the %d allowed", len(in.Tags), MaxTags))
		} else {
			for i, t := range in.Tags {
				if n := utf8.RuneCountInString(t); t == "" || n > MaxTag {
					bad(fmt.Sprintf("tags[%d]", i), fmt.Sprintf("must be 1 to %d characters", MaxTag))
				}
			}
		}
	}
	out := &integrationInput{in: in, creds: creds}
	if raw := m["config"]; !isNull(raw) {
		var cerrs []FieldError
		out.config, cerrs, out.warns = configField(in.Type, in.Parameters, raw, body)
		errs = append(errs, cerrs...)
	}
	if len(errs) > 0 {
		e := errValidation(fmt.Sprintf("the integration has %d problem(s)", len(errs)), errs).(*apiError)
		e.p.Warnings = out.warns
		return nil, e
	}
	// The source itself checks what it needs of parameters and credentials together
	// (an auth type's credentials, a root inside the allowed ones), so that a
	// misconfigured integration is refused now rather than failing its first run.
	effective := creds
	if effective == nil && pathID != "" {
		if effective, err = s.d.Integrations.Credentials(ctx, tenant, pathID); err != nil {
			return nil, err
		}
		defer clear(effective) // the stored ones, read for this check only
	}
	_, err = s.d.Sources.New(in.Type, in.Parameters, effective)
	if err != nil {
		return nil, errValidation("the source refuses these parameters and credentials",
			[]FieldError{{Field: "parameters", Message: err.Error()}})
	}
	return out, nil
}

// newID makes an id for an integration created without one: the display name as a
// slug, and 8 random hex digits.
func newID(displayName string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(displayName) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	slug := strings.Trim(b.String(), "-")
	if slug == "" {
		slug = "integration"
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return slug + "-" + hex.EncodeToString(rnd[:])
}

// save stores a checked integration and, when the body gave a config, its next
// config version (announced with config.patched).
func (s *server) save(ctx context.Context, inp *integrationInput) (*integration.Integration, error) {
	if _, err := s.d.Integrations.Put(ctx, inp.in, inp.creds); err != nil {
		return nil, err
	}
	clear(inp.creds)
	if inp.config != nil {
		if _, err := s.addConfig(ctx, inp.in.Tenant, inp.in.ID, inp.config); err != nil {
			return nil, err
		}
	}
	return s.d.Integrations.Get(ctx, inp.in.Tenant, inp.in.ID)
}

// answerIntegration writes in with the given status, and the config's warnings.
func (s *server) answerIntegration(ctx context.Context, w http.ResponseWriter, status int, in *integration.Integration, warns []FieldError) error {
	v, err := s.view(ctx, in, true)
	if err != nil {
		return err
	}
	if len(warns) == 0 {
		return writeJSON(w, status, v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding integration: %w", err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("encoding integration: %w", err)
	}
	out["warnings"] = warns
	return writeJSON(w, status, out)
}

func (s *server) createIntegration(w http.ResponseWriter, r *http.Request, c *call) error {
	inp, err := s.parseIntegration(r.Context(), w, r, c.tenant, "")
	if err != nil {
		return err
	}
	if inp.in.ID == "" {
		inp.in.ID = newID(inp.in.DisplayName)
	}
	switch _, err := s.d.Integrations.Get(r.Context(), c.tenant, inp.in.ID); {
	case err == nil:
		return errConflict("integration " + quoteShort(inp.in.ID) + " exists; PUT updates it")
	case !errors.Is(err, integration.ErrNotFound):
		return err
	}
	in, err := s.save(r.Context(), inp)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/tenants/"+c.tenant+"/integrations/"+in.ID)
	return s.answerIntegration(r.Context(), w, http.StatusCreated, in, inp.warns)
}

// putIntegration creates or replaces an integration (201 or 200). Credentials left
// out are kept; a config left out keeps the stored versions.
func (s *server) putIntegration(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("id")
	if !integration.ValidID(id) {
		return errValidation("the id in the path is not valid", []FieldError{{Field: "id", Message: "must match " + integration.IDPattern.String()}})
	}
	status := http.StatusOK
	switch _, err := s.d.Integrations.Get(r.Context(), c.tenant, id); {
	case errors.Is(err, integration.ErrNotFound):
		status = http.StatusCreated
	case err != nil:
		return err
	}
	inp, err := s.parseIntegration(r.Context(), w, r, c.tenant, id)
	if err != nil {
		return err
	}
	in, err := s.save(r.Context(), inp)
	if err != nil {
		return err
	}
	return s.answerIntegration(r.Context(), w, status, in, inp.warns)
}

func (s *server) getIntegration(w http.ResponseWriter, r *http.Request, c *call) error {
	in, err := s.integration(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	v, err := s.view(r.Context(), in, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func (s *server) listIntegrations(w http.ResponseWriter, r *http.Request, c *call) error {
	p, err := pageParams(r)
	if err != nil {
		return err
	}
	ins, next, err := s.d.Integrations.List(r.Context(), c.tenant, p.cursor, p.limit)
	if err != nil {
		return err
	}
	views := make([]*integrationView, 0, len(ins))
	for _, in := range ins {
		v, err := s.view(r.Context(), in, false)
		if err != nil {
			return err
		}
		views = append(views, v)
	}
	return list(w, "integrations", views, next)
}

// deleteIntegration deletes an integration; with ?deleteEntities=true it first
// deletes the entities it owns, honouring its newest config's deleteDependents, and
// answers what that did.
func (s *server) deleteIntegration(w http.ResponseWriter, r *http.Request, c *call) error {
	withEntities, err := boolParam(r, "deleteEntities")
	if err != nil {
		return err
	}
	in, err := s.integration(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	out := map[string]any{"deleted": true}
	if withEntities {
		cfg, err := s.newestConfig(r.Context(), in)
		if err != nil {
			return err
		}
		dependents := cfg != nil && cfg.DeleteDependents
		rep, err := s.d.Catalog.DeleteOwned(r.Context(), in.Tenant, in.ID, dependents)
		if err != nil {
			return err
		}
		out["entities"] = map[string]any{
			"owned": rep.Owned, "deleted": len(rep.Deleted), "keptForDependents": len(rep.KeptForDependents),
			"cleared": len(rep.Cleared), "deleteDependents": dependents,
		}
	}
	if err := s.d.Integrations.Delete(r.Context(), in.Tenant, in.ID); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

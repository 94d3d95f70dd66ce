package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/queue"
)

// SignatureHeader carries the HMAC-SHA256 of an event request's raw body under the
// integration's webhookSecret credential, as "sha256=<hex>". It authenticates
// POST .../integrations/{id}/events in place of a bearer token (a request with an
// Authorization header is judged by its token alone).
const SignatureHeader = "X-Configsync-Signature"

// errBadSignature is every refusal of a signed request, alike, so that a caller
// without the secret learns nothing (not whether the integration exists, nor
// whether it has a secret).
var errBadSignature = errUnauthorized("the signature does not match the body under the integration's webhook secret", nil)

// authorizeSignature checks SignatureHeader against the body, which it reads (bounded)
// and hands to the handler.
func (s *server) authorizeSignature(w http.ResponseWriter, r *http.Request) (*call, error) {
	tenant, id := r.PathValue("tenant"), r.PathValue("id")
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(r.Header.Get(SignatureHeader)), "sha256=")
	got, herr := hex.DecodeString(hexSig)
	if !ok || herr != nil || len(got) != sha256.Size || !integration.ValidID(tenant) || !integration.ValidID(id) {
		return nil, errBadSignature
	}
	creds, err := s.d.Integrations.Credentials(r.Context(), tenant, id)
	if err != nil {
		return nil, err
	}
	secret := creds[WebhookSecretCredential]
	clear(creds)
	if secret == "" {
		return nil, errBadSignature
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), got) {
		return nil, errBadSignature
	}
	return &call{tenant: tenant, body: body}, nil
}

// postEvents publishes a resources event (live items to upsert or delete) from the
// body of one: {"kind", "upsert": [...], "delete": [...]}; 202 with the event id.
func (s *server) postEvents(w http.ResponseWriter, r *http.Request, c *call) error {
	in, err := s.integration(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		if c.claims == nil { // signed: the signature was good, so the integration existed
			return errBadSignature
		}
		return err
	}
	body := c.body
	if body == nil {
		if body, err = s.readBody(w, r); err != nil {
			return err
		}
	}
	m, err := members(body)
	if err != nil {
		return err
	}
	var kind string
	if raw, ok := m["kind"]; ok {
		_ = json.Unmarshal(raw, &kind)
	}
	ev, err := queue.NewEnvelope(queue.TypeResources, in.Tenant, in.ID, json.RawMessage(body))
	if errors.Is(err, queue.ErrInvalidEvent) {
		return errValidation("not the body of a resources event: "+strings.TrimPrefix(err.Error(), queue.ErrInvalidEvent.Error()+": "), nil)
	}
	if err != nil {
		return err
	}
	cfg, err := s.newestConfig(r.Context(), in)
	if err != nil {
		return err
	}
	if cfg == nil {
		return errConflict("integration " + quoteShort(in.ID) + " has no config yet; PATCH its config first")
	}
	kinds := make([]string, 0, len(cfg.Resources))
	for _, res := range cfg.Resources {
		kinds = append(kinds, res.Kind)
	}
	if !slices.Contains(kinds, kind) {
		return errValidation("kind is not a kind of the integration's config",
			[]FieldError{{Field: "kind", Message: "not a kind of the newest config (kinds: " + strings.Join(kinds, ", ") + ")"}})
	}
	if err := s.d.Queue.Publish(r.Context(), ev); err != nil {
		return errUnavailable("the event could not be published; retry", err)
	}
	return writeJSON(w, http.StatusAccepted, map[string]any{"eventId": ev.ID})
}

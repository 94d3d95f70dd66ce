package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/configsync/configsync/queue"
)

func signature(secret, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// TestEventsSignature: POST .../events takes an HMAC-SHA256 signature of the raw body
// under the integration's webhookSecret instead of a token.
func TestEventsSignature(t *testing.T) {
	e := newEnv(t)
	const secret = "webhook-secret-0123456789"
	tok := e.token(true, "acme")
	in := e.fileIntegration("svc")
	in["credentials"] = map[string]string{WebhookSecretCredential: secret}
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, in), http.StatusCreated)
	want(t, e.req("POST", "/v1/tenants/acme/integrations", tok, e.fileIntegration("nosecret")), http.StatusCreated)
	in = e.fileIntegration("bsvc")
	in["credentials"] = map[string]string{WebhookSecretCredential: "beta-secret-0123456789"}
	want(t, e.req("POST", "/v1/tenants/beta/integrations", e.token(true, "beta"), in), http.StatusCreated)

	const body = `{"kind": "service", "upsert": [{"name": "api"}]}`
	const path = "/v1/tenants/acme/integrations/svc/events"
	tests := []struct {
		name   string
		path   string
		body   string
		header []string
		status int
	}{
		{"good", path, body, []string{SignatureHeader, signature(secret, body)}, 202},
		{"good, upper-case hex", path, body, []string{SignatureHeader, "sha256=" + strings.ToUpper(strings.TrimPrefix(signature(secret, body), "sha256="))}, 202},
		{"missing: no signature, no token", path, body, nil, 401},
		{"empty signature", path, body, []string{SignatureHeader, ""}, 401},
		{"wrong secret", path, body, []string{SignatureHeader, signature("another-secret-0123456789", body)}, 401},
		{"body changed after signing", path, body, []string{SignatureHeader, signature(secret, strings.Replace(body, "api", "evil", 1))}, 401},
		{"no sha256= prefix", path, body, []string{SignatureHeader, strings.TrimPrefix(signature(secret, body), "sha256=")}, 401},
		{"not hex", path, body, []string{SignatureHeader, "sha256=zz"}, 401},
		{"short", path, body, []string{SignatureHeader, signature(secret, body)[:20]}, 401},
		{"integration without a webhook secret", "/v1/tenants/acme/integrations/nosecret/events", body,
			[]string{SignatureHeader, signature("", body)}, 401},
		{"missing integration", "/v1/tenants/acme/integrations/nope/events", body, []string{SignatureHeader, signature(secret, body)}, 401},
		{"acme's secret on beta's integration", "/v1/tenants/beta/integrations/bsvc/events", body, []string{SignatureHeader, signature(secret, body)}, 401},
		{"a bad token beside a good signature is judged by the token", path, body,
			[]string{SignatureHeader, signature(secret, body), "Authorization", "Bearer nope"}, 401},
		{"good signature, bad event", path, `{"kind": "service", "upsert": ["x"]}`,
			[]string{SignatureHeader, signature(secret, `{"kind": "service", "upsert": ["x"]}`)}, 422},
	}
	published := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.req("POST", tc.path, "", tc.body, tc.header...)
			switch tc.status {
			case 202:
				want(t, r, http.StatusAccepted)
				published++
			case 401:
				wantProblem(t, r, http.StatusUnauthorized, "unauthorized")
			default:
				wantProblem(t, r, tc.status, "validation")
			}
		})
	}
	evs := e.commandsOf(queue.TypeResources)
	if len(evs) != published {
		t.Fatalf("%d resources events published, want %d", len(evs), published)
	}
	for _, ev := range evs {
		if ev.Tenant != "acme" || ev.Integration != "svc" {
			t.Fatalf("event for %s/%s", ev.Tenant, ev.Integration)
		}
	}
}

package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims are valid claims for tenant acme with write, for signing by hand.
func claims(change func(*Claims)) *Claims {
	now := time.Now()
	c := &Claims{Tenants: []string{"acme"}, Write: true, RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
	if change != nil {
		change(c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, c *Claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publicKeyPEM is the RS256 public key as a verifier would hold it: the bytes an
// algorithm-confusion attack uses as an HMAC secret.
func publicKeyPEM(t *testing.T) []byte {
	der, err := x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestTokens(t *testing.T) {
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	both := newEnv(t, func(c *Config) { c.Audience, c.Issuer = "configsync", "https://issuer.example" })
	rsOnly := newEnv(t, func(c *Config) { c.JWTSecret = nil })
	hsOnly := newEnv(t, func(c *Config) { c.JWTPublicKey = nil })
	aud := func(c *Claims) { c.Audience = jwt.ClaimStrings{"configsync"}; c.Issuer = "https://issuer.example" }

	tests := []struct {
		name   string
		e      *env
		header string // the Authorization header
		status int
		detail string
	}{
		{"HS256 valid", hsOnly, "Bearer " + sign(t, jwt.SigningMethodHS256, claims(nil), hsOnly.secret), 200, ""},
		{"RS256 valid", rsOnly, "Bearer " + sign(t, jwt.SigningMethodRS256, claims(nil), rsaKey()), 200, ""},
		{"audience and issuer valid", both, "Bearer " + sign(t, jwt.SigningMethodRS256, claims(aud), rsaKey()), 200, ""},
		{"MintToken's token", hsOnly, "Bearer " + hsOnly.token(false, "acme"), 200, ""},
		{"lower-case scheme", hsOnly, "bearer " + hsOnly.token(false, "acme"), 200, ""},

		{"no header", hsOnly, "", 401, "needs Authorization"},
		{"not bearer", hsOnly, "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), 401, "Bearer <token>"},
		{"bearer without token", hsOnly, "Bearer ", 401, "Bearer <token>"},
		{"garbage", hsOnly, "Bearer not.a.jwt", 401, "not valid"},
		{"alg none", hsOnly, "Bearer " + sign(t, jwt.SigningMethodNone, claims(nil), jwt.UnsafeAllowNoneSignatureType), 401, "not valid"},
		{"alg none, signature stripped from a valid token", hsOnly, "Bearer " + noneOf(t, hsOnly.token(true, "acme")), 401, "not valid"},
		{"HS256 signed with the RS256 public key PEM (RS256 only)", rsOnly, "Bearer " + sign(t, jwt.SigningMethodHS256, claims(nil), publicKeyPEM(t)), 401, "not valid"},
		{"HS256 signed with the RS256 public key PEM (both)", both, "Bearer " + sign(t, jwt.SigningMethodHS256, claims(aud), publicKeyPEM(t)), 401, "not valid"},
		{"HS256 with another secret", hsOnly, "Bearer " + sign(t, jwt.SigningMethodHS256, claims(nil), []byte(strings.Repeat("k", 32))), 401, "not valid"},
		{"RS256 with another key", rsOnly, "Bearer " + sign(t, jwt.SigningMethodRS256, claims(nil), otherRSA), 401, "not valid"},
		{"RS256 when only HS256 is configured", hsOnly, "Bearer " + sign(t, jwt.SigningMethodRS256, claims(nil), rsaKey()), 401, "not valid"},
		{"ES256", both, "Bearer " + sign(t, jwt.SigningMethodES256, claims(aud), ecKey), 401, "not valid"},
		{"expired", hsOnly, "Bearer " + sign(t, jwt.SigningMethodHS256, claims(func(c *Claims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
		}), hsOnly.secret), 401, "expired"},
		{"expired MintToken", hsOnly, "Bearer " + mustMint(t, hsOnly.secret, time.Now().Add(-2*time.Hour)), 401, "expired"},
		{"no exp", hsOnly, "Bearer " + sign(t, jwt.SigningMethodHS256, claims(func(c *Claims) { c.ExpiresAt = nil }), hsOnly.secret), 401, "not valid"},
		{"not yet valid", hsOnly, "Bearer " + sign(t, jwt.SigningMethodHS256, claims(func(c *Claims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
		}), hsOnly.secret), 401, "not valid"},
		{"wrong audience", both, "Bearer " + sign(t, jwt.SigningMethodRS256, claims(func(c *Claims) {
			aud(c)
			c.Audience = jwt.ClaimStrings{"someone-else"}
		}), rsaKey()), 401, "not valid"},
		{"no audience", both, "Bearer " + sign(t, jwt.SigningMethodHS256, claims(func(c *Claims) { c.Issuer = "https://issuer.example" }), both.secret), 401, "not valid"},
		{"wrong issuer", both, "Bearer " + sign(t, jwt.SigningMethodRS256, claims(func(c *Claims) {
			aud(c)
			c.Issuer = "https://evil.example"
		}), rsaKey()), 401, "not valid"},
		{"no tenants", hsOnly, "Bearer " + sign(t, jwt.SigningMethodHS256, claims(func(c *Claims) { c.Tenants = nil }), hsOnly.secret), 401, "no tenants"},
		{"tampered payload", hsOnly, "Bearer " + tamper(t, hsOnly.token(false, "other")), 401, "not valid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Authorization", tc.header}
			}
			r := tc.e.req("GET", "/v1/tenants/acme/integrations", "", nil, hdr...)
			if tc.status == 200 {
				want(t, r, http.StatusOK)
				return
			}
			m := wantProblem(t, r, http.StatusUnauthorized, "unauthorized")
			if !strings.Contains(m["detail"].(string), tc.detail) {
				t.Errorf("detail %q lacks %q", m["detail"], tc.detail)
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate: %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

func mustMint(t *testing.T, secret []byte, now time.Time) string {
	tok, err := MintToken(secret, []string{"acme"}, true, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// noneOf rewrites a token's header to alg none and drops its signature.
func noneOf(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
}

// tamper swaps a valid token's payload for one naming tenant acme with write.
func tamper(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"tenants":["acme"],"write":true,"exp":` +
		strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + `}`))
	return parts[0] + "." + payload + "." + parts[2]
}

func TestMintToken(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tok, err := MintToken(secret, []string{"default", "acme"}, true, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	var c Claims
	_, err = jwt.NewParser(jwt.WithTimeFunc(func() time.Time { return now })).ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Tenants, ",") != "default,acme" || !c.Write || !c.ExpiresAt.Equal(now.Add(DefaultTokenTTL)) || c.ID == "" {
		t.Fatalf("claims: %+v", c)
	}
	for name, f := range map[string]func() error{
		"short secret":   func() error { _, err := MintToken(secret[:31], []string{"a"}, false, time.Hour, now); return err },
		"no tenants":     func() error { _, err := MintToken(secret, nil, false, time.Hour, now); return err },
		"invalid tenant": func() error { _, err := MintToken(secret, []string{"A B"}, false, time.Hour, now); return err },
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	e := newEnv(t)
	deps := Deps{Integrations: e.ints, Catalog: e.cat, Runs: e.runs, Queue: e.q, Sources: e.sources}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, c := range map[string]struct {
		cfg  Config
		deps Deps
	}{
		"no key":             {Config{}, deps},
		"short secret":       {Config{JWTSecret: []byte("short")}, deps},
		"not an RSA key":     {Config{JWTPublicKey: &ec.PublicKey}, deps},
		"missing dependency": {Config{JWTSecret: e.secret}, Deps{Integrations: e.ints}},
	} {
		if _, err := New(c.cfg, c.deps); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestAccessRules: a read-only token reads but does not write (403); a write to
// another tenant is 404 even for a read-only token; Port's route needs a token of
// exactly one tenant.
func TestAccessRules(t *testing.T) {
	e := newEnv(t)
	w := e.token(true, "acme")
	ro := e.token(false, "acme")
	want(t, e.req("POST", "/v1/tenants/acme/integrations", w, e.fileIntegration("svc")), http.StatusCreated)
	want(t, e.req("GET", "/v1/tenants/acme/integrations/svc", ro, nil), http.StatusOK)
	wantProblem(t, e.req("PATCH", "/v1/tenants/acme/integrations/svc/config", ro, `{"config": {"resources": []}}`), http.StatusForbidden, "forbidden")
	wantProblem(t, e.req("PATCH", "/v1/tenants/other/integrations/svc/config", ro, `{"config": {"resources": []}}`), http.StatusNotFound, "not-found")
	wantProblem(t, e.req("PATCH", "/v1/integration/svc/config", ro, `{"config": {"resources": []}}`), http.StatusForbidden, "forbidden")
	m := wantProblem(t, e.req("PATCH", "/v1/integration/svc/config", e.token(true, "acme", "beta"), `{"config": {"resources": []}}`), http.StatusBadRequest, "bad-request")
	if !strings.Contains(m["detail"].(string), "exactly one") {
		t.Errorf("detail: %v", m["detail"])
	}
	want(t, e.req("PATCH", "/v1/integration/svc/config", w, `{"config": {"resources": []}}`), http.StatusOK)
	// A token of two tenants reaches both.
	two := e.token(true, "acme", "beta")
	want(t, e.req("GET", "/v1/tenants/acme/integrations", two, nil), http.StatusOK)
	want(t, e.req("GET", "/v1/tenants/beta/integrations", two, nil), http.StatusOK)
}

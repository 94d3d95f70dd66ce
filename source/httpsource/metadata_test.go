package httpsource_test

import (
	"slices"
	"testing"

	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// TestMetadata checks the public contract: the parameter names the issue
// lists, their types and defaults, and the auth methods with their
// credentials and connection test support. NewRegistry panics on an invalid
// definition, so building one checks the definitions too.
func TestMetadata(t *testing.T) {
	ty := httpsource.Type(httpsource.Options{})
	reg := source.NewRegistry(ty)
	if ty.ID != "http" || ty.DisplayName == "" || ty.Description == "" {
		t.Errorf("type id/display/description: %q %q %q", ty.ID, ty.DisplayName, ty.Description)
	}

	type want struct {
		typ      string
		required bool
		def      any
		options  []string
		irange   *[2]int64
		frange   *[2]float64
	}
	params := map[string]want{
		"baseUrl":               {typ: source.TypeString, required: true},
		"headers":               {typ: source.TypeObject},
		"timeout":               {typ: source.TypeNumber, def: 30.0, frange: &[2]float64{0.1, 3600}},
		"verifyTls":             {typ: source.TypeBoolean, def: true},
		"maxConcurrentRequests": {typ: source.TypeInteger, def: int64(4), irange: &[2]int64{1, 64}},
		"rateLimit":             {typ: source.TypeNumber, def: 0.0, frange: &[2]float64{0, 100000}},
		"pagination":            {typ: source.TypeObject},
		"authType":              {typ: source.TypeString, def: "none", options: []string{"none", "bearer", "basic", "apiKey", "oauth2ClientCredentials", "custom"}},
		"apiKeyHeader":          {typ: source.TypeString},
		"apiKeyQuery":           {typ: source.TypeString},
		"tokenUrl":              {typ: source.TypeString},
		"scopes":                {typ: source.TypeArray},
		"tokenAuthStyle":        {typ: source.TypeString, def: "header", options: []string{"header", "body"}},
		"customAuth":            {typ: source.TypeObject},
		"testPath":              {typ: source.TypeString},
	}
	seen := map[string]bool{}
	for _, p := range ty.Parameters {
		seen[p.Name] = true
		w, ok := params[p.Name]
		if !ok {
			t.Errorf("unexpected parameter %q", p.Name)
			continue
		}
		if p.Type != w.typ || p.Required != w.required || p.Secret || p.Default != w.def || !slices.Equal(p.Options, w.options) {
			t.Errorf("parameter %s: type %s required %v secret %v default %#v options %v; want %s %v false %#v %v",
				p.Name, p.Type, p.Required, p.Secret, p.Default, p.Options, w.typ, w.required, w.def, w.options)
		}
		if (p.IntegerRange == nil) != (w.irange == nil) || p.IntegerRange != nil && *p.IntegerRange != *w.irange {
			t.Errorf("parameter %s: integer range %v, want %v", p.Name, p.IntegerRange, w.irange)
		}
		if (p.FloatRange == nil) != (w.frange == nil) || p.FloatRange != nil && *p.FloatRange != *w.frange {
			t.Errorf("parameter %s: float range %v, want %v", p.Name, p.FloatRange, w.frange)
		}
		if p.Description == "" || p.DisplayName == "" {
			t.Errorf("parameter %s has no description or display name", p.Name)
		}
	}
	for name := range params {
		if !seen[name] {
			t.Errorf("parameter %q missing", name)
		}
	}

	auths := map[string]struct {
		test    bool
		secrets []string
		params  []string
	}{
		"none":                    {test: true},
		"bearer":                  {test: true, secrets: []string{"token"}},
		"basic":                   {test: true, secrets: []string{"username", "password"}},
		"apiKey":                  {test: true, secrets: []string{"apiKey"}, params: []string{"apiKeyHeader", "apiKeyQuery"}},
		"oauth2ClientCredentials": {test: true, secrets: []string{"clientId", "clientSecret"}, params: []string{"tokenUrl", "scopes", "tokenAuthStyle"}},
		"custom":                  {test: false, params: []string{"customAuth"}},
	}
	if len(ty.Auth) != len(auths) {
		t.Errorf("%d auth methods, want %d", len(ty.Auth), len(auths))
	}
	for _, a := range ty.Auth {
		w, ok := auths[a.ID]
		if !ok {
			t.Errorf("unexpected auth method %q", a.ID)
			continue
		}
		if a.ConfigTestSupported != w.test || a.DisplayName == "" {
			t.Errorf("auth %s: test supported %v, want %v", a.ID, a.ConfigTestSupported, w.test)
		}
		var secrets, others []string
		for _, p := range a.Parameters {
			if p.Secret {
				secrets = append(secrets, p.Name)
				if !p.Required {
					t.Errorf("auth %s: credential %s not required", a.ID, p.Name)
				}
			} else {
				others = append(others, p.Name)
				if _, ok := params[p.Name]; !ok {
					t.Errorf("auth %s: parameter %s is not a parameter of the type, so the registry would refuse it", a.ID, p.Name)
				}
			}
		}
		if !slices.Equal(secrets, w.secrets) || !slices.Equal(others, w.params) {
			t.Errorf("auth %s: credentials %v params %v, want %v %v", a.ID, secrets, others, w.secrets, w.params)
		}
	}

	// The registry validates against this metadata.
	if err := reg.ValidateParameters("http", map[string]any{"baseUrl": "https://api.example.com", "authType": "digest"}); err == nil {
		t.Error("authType digest accepted")
	}
	if err := reg.ValidateParameters("http", map[string]any{"authType": "bearer"}); err == nil {
		t.Error("missing baseUrl accepted")
	}
	if err := reg.ValidateParameters("http", map[string]any{"baseUrl": "https://x", "maxConcurrentRequests": int64(65)}); err == nil {
		t.Error("maxConcurrentRequests 65 accepted")
	}
}

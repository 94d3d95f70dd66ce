package httpsource_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// TestAuthMethods fetches a protected resource with every auth method, then
// with wrong credentials, which must fail with the 401 and not retry.
func TestAuthMethods(t *testing.T) {
	const (
		token    = "tok-3f9a1c77"
		user     = "alice"
		password = "pw-0d1e2f"
		apiKey   = "key-77aa99bb"
		clientID = "client-1"
		secret   = "cs-5b6c7d8e"
	)
	var tokenRequests atomic.Int32
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		ok := false
		switch r.URL.Path {
		case "/oauth/token":
			tokenRequests.Add(1)
			id, sec, basic := r.BasicAuth()
			if !basic {
				_ = r.ParseForm()
				id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
			}
			if r.Method != http.MethodPost || r.FormValue("grant_type") != "client_credentials" || r.FormValue("scope") != "read:all list" ||
				id != clientID || sec != secret {
				w.WriteHeader(http.StatusUnauthorized)
				writeJSON(w, map[string]any{"error": "invalid_client"})
				return
			}
			writeJSON(w, map[string]any{"access_token": "oauth-" + token, "token_type": "bearer", "expires_in": 3600})
			return
		case "/login":
			tokenRequests.Add(1)
			var body map[string]string
			_ = json.NewDecoder(r.Body).Decode(&body)
			if r.Header.Get("X-Client") != clientID || body["user"] != user || body["password"] != password {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			writeJSON(w, map[string]any{"session": map[string]any{"id": "sess-" + token, "ttl": 600}})
			return
		case "/none":
			ok = r.Header.Get("Authorization") == ""
		case "/bearer":
			ok = r.Header.Get("Authorization") == "Bearer "+token
		case "/basic":
			u, p, _ := r.BasicAuth()
			ok = u == user && p == password
		case "/apikey-header":
			ok = r.Header.Get("X-Api-Key") == apiKey
		case "/apikey-query":
			ok = r.URL.Query().Get("api_key") == apiKey
		case "/oauth":
			ok = r.Header.Get("Authorization") == "Bearer oauth-"+token
		case "/custom":
			ok = r.Header.Get("X-Session") == "sess-"+token && r.URL.Query().Get("sid") == "sess-"+token
		}
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			writeJSON(w, map[string]any{"error": "unauthorized"})
			return
		}
		writeJSON(w, idItems("x", 0, 2))
	})
	oauthParams := map[string]any{"authType": "oauth2ClientCredentials", "tokenUrl": "/oauth/token", "scopes": []any{"read:all", "list"}}
	customParams := map[string]any{"authType": "custom", "customAuth": map[string]any{
		"request": map[string]any{
			"path":    "/login",
			"headers": map[string]any{"X-Client": "{{credentials.clientId}}"},
			"body":    map[string]any{"user": "{{credentials.username}}", "password": "{{ credentials.password }}"},
		},
		"headers":   map[string]any{"X-Session": ".session.id"},
		"query":     map[string]any{"sid": ".session.id"},
		"expiresIn": ".session.ttl",
	}}
	tests := []struct {
		name   string
		path   string
		params map[string]any
		creds  map[string]string
		wrong  map[string]string // credentials that must be refused
	}{
		{"none", "/none", map[string]any{}, nil, nil},
		{"bearer", "/bearer", map[string]any{"authType": "bearer"}, map[string]string{"token": token}, map[string]string{"token": "nope-nope"}},
		{"basic", "/basic", map[string]any{"authType": "basic"}, map[string]string{"username": user, "password": password},
			map[string]string{"username": user, "password": "wrong-pw"}},
		{"apiKey header", "/apikey-header", map[string]any{"authType": "apiKey", "apiKeyHeader": "X-API-Key"},
			map[string]string{"apiKey": apiKey}, map[string]string{"apiKey": "bad-key-1"}},
		{"apiKey query", "/apikey-query", map[string]any{"authType": "apiKey", "apiKeyQuery": "api_key"},
			map[string]string{"apiKey": apiKey}, map[string]string{"apiKey": "bad-key-1"}},
		{"oauth2 basic client auth", "/oauth", oauthParams, map[string]string{"clientId": clientID, "clientSecret": secret},
			map[string]string{"clientId": clientID, "clientSecret": "bad-secret"}},
		{"oauth2 body client auth", "/oauth", with(oauthParams, "tokenAuthStyle", "body"), map[string]string{"clientId": clientID, "clientSecret": secret},
			map[string]string{"clientId": clientID, "clientSecret": "bad-secret"}},
		{"custom", "/custom", customParams, map[string]string{"clientId": clientID, "username": user, "password": password},
			map[string]string{"clientId": clientID, "username": user, "password": "bad-password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := with(tt.params, "baseUrl", srv.URL)
			s := newSource(t, testOptions(), params, tt.creds)
			items, _, err := fetchAll(t, s, "x", map[string]any{"path": tt.path})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if got := ids(items); !slices.Equal(got, []string{"x0", "x1"}) {
				t.Errorf("items %v", got)
			}
			if tt.wrong == nil {
				return
			}
			before := tokenRequests.Load()
			s = newSource(t, testOptions(), params, tt.wrong)
			_, _, err = fetchAll(t, s, "x", map[string]any{"path": tt.path})
			var he *httpsource.HTTPError
			if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong credentials: %v, want a 401 HTTPError", err)
			}
			for _, v := range tt.wrong {
				if len(v) >= 4 && v != user && v != clientID && containsAny(errorChain(err), v) {
					t.Errorf("error quotes a credential: %v", err)
				}
			}
			if n := tokenRequests.Load() - before; n > 1 {
				t.Errorf("%d token requests for refused credentials, want at most 1", n)
			}
		})
	}
}

// with returns a copy of m with k set to v.
func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}

// TestAuthConfigErrors checks that missing or contradictory credentials and
// auth parameters are refused when the source is made.
func TestAuthConfigErrors(t *testing.T) {
	base := map[string]any{"baseUrl": "https://api.example.com"}
	tests := []struct {
		name   string
		params map[string]any
		creds  map[string]string
		want   string
	}{
		{"bearer without token", with(base, "authType", "bearer"), nil, "needs the credentials token"},
		{"basic without password", with(base, "authType", "basic"), map[string]string{"username": "u"}, "password"},
		{"apiKey without place", with(base, "authType", "apiKey"), map[string]string{"apiKey": "k"}, "exactly one of"},
		{"apiKey with both places", with(with(with(base, "authType", "apiKey"), "apiKeyHeader", "X-K"), "apiKeyQuery", "k"),
			map[string]string{"apiKey": "k"}, "exactly one of"},
		{"oauth2 without tokenUrl", with(base, "authType", "oauth2ClientCredentials"), map[string]string{"clientId": "i", "clientSecret": "s"}, "tokenUrl"},
		{"custom without customAuth", with(base, "authType", "custom"), nil, "customAuth"},
		{"custom with a missing credential", with(with(base, "authType", "custom"), "customAuth", map[string]any{
			"request": map[string]any{"path": "/login", "body": map[string]any{"p": "{{credentials.password}}"}},
			"headers": map[string]any{"Authorization": `"Bearer " + .token`},
		}), nil, "credentials that are not given: password"},
		{"custom with bad jq", with(with(base, "authType", "custom"), "customAuth", map[string]any{
			"request": map[string]any{"path": "/login"},
			"headers": map[string]any{"Authorization": `"Bearer " + `},
		}), nil, "customAuth.headers.Authorization"},
		{"custom with a misspelt field", with(with(base, "authType", "custom"), "customAuth", map[string]any{
			"request": map[string]any{"path": "/login"}, "header": map[string]any{"A": ".t"},
		}), nil, "unknown fields header"},
		{"baseUrl with credentials", map[string]any{"baseUrl": "https://bob:hunter22@api.example.com"}, nil, "must not hold credentials"},
		{"baseUrl not http", map[string]any{"baseUrl": "ftp://api.example.com"}, nil, "http or https"},
		{"bad default pagination", with(base, "pagination", map[string]any{"type": "cursor"}), nil, "cursorPath"},
		{"reserved header", with(base, "headers", map[string]any{"Host": "x"}), nil, "set by the transport"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newSourceErr(testOptions(), tt.params, tt.creds)
			if err == nil || !contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error with %q", err, tt.want)
			}
			if contains(err.Error(), "hunter22") {
				t.Errorf("error quotes the password of the baseUrl: %v", err)
			}
		})
	}
}

// TestOAuth2TokenRefresh shows the oauth2 token cached across requests and
// refreshed before it expires: a run whose clock passes the token's lifetime
// mid-run gets a second token, and the server never sees an expired one.
func TestOAuth2TokenRefresh(t *testing.T) {
	clock := newFakeClock()
	var mu sync.Mutex
	issued := map[string]time.Time{} // token -> expiry, on the fake clock
	n := 0
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/token" {
			n++
			tok := fmt.Sprintf("t%d", n)
			issued[tok] = clock.Now().Add(100 * time.Second)
			writeJSON(w, map[string]any{"access_token": tok, "expires_in": 100})
			return
		}
		auth := r.Header.Get("Authorization")
		exp, ok := issued[auth[len("Bearer "):]]
		if !ok || !clock.Now().Before(exp) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		page := r.URL.Query().Get("page")
		if page == "5" {
			writeJSON(w, []any{})
			return
		}
		writeJSON(w, []any{map[string]any{"id": page, "token": auth}})
	})
	opts := testOptions()
	opts.Clock = clock
	s := newSource(t, opts, map[string]any{"baseUrl": srv.URL, "authType": "oauth2ClientCredentials", "tokenUrl": srv.URL + "/token",
		"pagination": map[string]any{"type": "page"}}, map[string]string{"clientId": "id", "clientSecret": "secret-1234"})
	items, _, err := fetchWith(t, s, source.Resource{Kind: "x"}, func(page int) {
		clock.Advance(40 * time.Second) // 4 pages: 160s, past the 100s lifetime
	})
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	for _, it := range items {
		tokens = append(tokens, it["token"].(string))
	}
	// Refresh at 75s (lifetime less a quarter): pages at 0, 40 use t1; 80, 120 use t2.
	if want := []string{"Bearer t1", "Bearer t1", "Bearer t2", "Bearer t2"}; !slices.Equal(tokens, want) {
		t.Errorf("tokens used %v, want %v", tokens, want)
	}
	// The closing empty page, at 160s, was past t2's refresh time (155s): t3.
	// A second fetch within t3's lifetime reuses it.
	if _, _, err := fetchAll(t, s, "x", nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 3 {
		t.Errorf("%d token requests, want 3", n)
	}
}

// customServer is an API whose custom login issues session tokens with a
// lifetime; it can revoke the current one.
type customServer struct {
	mu      sync.Mutex
	clock   *fakeClock
	logins  int
	valid   map[string]time.Time
	revoked map[string]bool
	// revokeAfterPage revokes the token used for that page, once.
	revokeAfterPage string
	// reject401 refuses every token.
	reject401 bool
	pages     int
}

func (cs *customServer) handler(w http.ResponseWriter, r *http.Request) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if r.URL.Path == "/login" {
		cs.logins++
		tok := fmt.Sprintf("session-%d", cs.logins)
		cs.valid[tok] = cs.clock.Now().Add(60 * time.Second)
		writeJSON(w, map[string]any{"token": tok, "ttl": 60})
		return
	}
	tok := r.Header.Get("X-Token")
	exp, ok := cs.valid[tok]
	if cs.reject401 || !ok || cs.revoked[tok] || !cs.clock.Now().Before(exp) {
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]any{"error": "expired"})
		return
	}
	page := r.URL.Query().Get("page")
	if page == cs.revokeAfterPage {
		cs.revoked[tok] = true
		cs.revokeAfterPage = ""
	}
	if page == "6" {
		writeJSON(w, []any{})
		return
	}
	cs.pages++
	writeJSON(w, []any{map[string]any{"id": page, "token": tok}})
}

func newCustomServer(t *testing.T, clock *fakeClock) (*customServer, httpsource.Options, map[string]any) {
	cs := &customServer{clock: clock, valid: map[string]time.Time{}, revoked: map[string]bool{}}
	srv := server(t, cs.handler)
	opts := testOptions()
	opts.Clock = clock
	params := map[string]any{"baseUrl": srv.URL, "authType": "custom", "pagination": map[string]any{"type": "page"},
		"customAuth": map[string]any{
			"request":   map[string]any{"path": "/login", "body": map[string]any{"key": "{{credentials.loginKey}}"}},
			"headers":   map[string]any{"X-Token": ".token"},
			"expiresIn": ".ttl",
		}}
	return cs, opts, params
}

// TestCustomAuthRefresh shows a custom token refreshed when it expires
// mid-run, and once after a 401 when the server revokes it early; a 401
// that persists fails after that one refresh.
func TestCustomAuthRefresh(t *testing.T) {
	creds := map[string]string{"loginKey": "login-key-42"}
	t.Run("expires mid-run", func(t *testing.T) {
		clock := newFakeClock()
		_, opts, params := newCustomServer(t, clock)
		s := newSource(t, opts, params, creds)
		items, _, err := fetchWith(t, s, source.Resource{Kind: "x"}, func(int) { clock.Advance(25 * time.Second) })
		if err != nil {
			t.Fatal(err)
		}
		var tokens []string
		for _, it := range items {
			tokens = append(tokens, it["token"].(string))
		}
		// ttl 60s, refreshed 15s early: pages at 0s, 25s use session-1; 50s, 75s session-2; 100s session-3.
		want := []string{"session-1", "session-1", "session-2", "session-2", "session-3"}
		if !slices.Equal(tokens, want) {
			t.Errorf("tokens %v, want %v", tokens, want)
		}
	})
	t.Run("401 refreshes once", func(t *testing.T) {
		cs, opts, params := newCustomServer(t, newFakeClock())
		cs.revokeAfterPage = "2"
		s := newSource(t, opts, params, creds)
		items, _, err := fetchAll(t, s, "x", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(items); !slices.Equal(got, []string{"1", "2", "3", "4", "5"}) {
			t.Errorf("items %v", got)
		}
		if cs.logins != 2 {
			t.Errorf("%d logins, want 2", cs.logins)
		}
	})
	t.Run("401 that persists", func(t *testing.T) {
		cs, opts, params := newCustomServer(t, newFakeClock())
		cs.reject401 = true
		s := newSource(t, opts, params, creds)
		_, _, err := fetchAll(t, s, "x", nil)
		var he *httpsource.HTTPError
		if !errors.As(err, &he) || he.StatusCode != 401 {
			t.Fatalf("Fetch: %v, want a 401", err)
		}
		if cs.logins != 2 {
			t.Errorf("%d logins, want 2 (the first, and one refresh)", cs.logins)
		}
	})
	t.Run("one refresh across concurrent requests", func(t *testing.T) {
		cs, opts, params := newCustomServer(t, newFakeClock())
		s := newSource(t, opts, params, creds)
		if _, _, err := fetchAll(t, s, "x", nil); err != nil {
			t.Fatal(err)
		}
		cs.mu.Lock()
		cs.revoked["session-1"] = true
		cs.mu.Unlock()
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() {
				_, _, errs[i] = fetchAll(t, s, "x", nil)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("fetch %d: %v", i, err)
			}
		}
		if cs.logins != 2 {
			t.Errorf("%d logins, want 2: concurrent 401s must share one refresh", cs.logins)
		}
	})
}

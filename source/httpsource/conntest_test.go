package httpsource_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/configsync/configsync/source/httpsource"
)

// TestConnectionTest checks the answers of TestConnection: ok, a remote
// refusal, an unreachable server and an address refused are all answers
// with OK false (never errors), and custom auth says it has no test.
func TestConnectionTest(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/v2/me" && r.URL.Path != "/api/v2" {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, map[string]any{"me": "x"})
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	bearer := func(base, path string) map[string]any {
		p := map[string]any{"baseUrl": base, "authType": "bearer"}
		if path != "" {
			p["testPath"] = path
		}
		return p
	}
	good := map[string]string{"token": "good-token"}
	tests := []struct {
		name    string
		params  map[string]any
		creds   map[string]string
		private bool
		ok      bool
		status  int
		msg     string
	}{
		{"ok", bearer(srv.URL+"/api/v2", "/me"), good, false, true, 200, "200 OK"},
		{"ok on baseUrl itself", bearer(srv.URL+"/api/v2", ""), good, false, true, 200, "200 OK"},
		{"refused", bearer(srv.URL+"/api/v2", "/me"), map[string]string{"token": "bad-token"}, false, false, 401, "401 Unauthorized"},
		{"not found", bearer(srv.URL+"/api/v2", "/nope"), good, false, false, 404, "404"},
		{"unreachable", bearer(closed.URL, "/me"), good, false, false, 0, "connection refused"},
		{"address refused", bearer(srv.URL, "/me"), good, true, false, 0, "not a public address"},
		{"path parameters", bearer(srv.URL, "/teams/{team}"), good, false, false, 0, "path parameters"},
		{"invalid parameters", map[string]any{"authType": "bearer"}, good, false, false, 0, "baseUrl"},
		{"missing credential", bearer(srv.URL, "/me"), nil, false, false, 0, "needs the credentials token"},
		{"custom is not supported", map[string]any{"baseUrl": srv.URL, "authType": "custom"}, nil, false, false, 0, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.AllowPrivate = !tt.private
			res := httpsource.TestConnection(t.Context(), opts, tt.params, tt.creds)
			if res.OK != tt.ok || res.Status != tt.status || !strings.Contains(res.Message, tt.msg) {
				t.Errorf("got %+v, want ok=%v status=%d message with %q", res, tt.ok, tt.status, tt.msg)
			}
			if res.LatencyMs < 0 {
				t.Errorf("latency %d", res.LatencyMs)
			}
		})
	}
	if p := httpsource.DefaultTestPath("repos", nil); p != "/repos" {
		t.Errorf("DefaultTestPath of a kind: %q", p)
	}
	if p := httpsource.DefaultTestPath("members", map[string]any{"path": "/teams/{team}/members"}); p != "" {
		t.Errorf("DefaultTestPath with path parameters: %q, want \"\"", p)
	}
}

package httpsource_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// TestAddressPolicy checks which addresses count as public.
func TestAddressPolicy(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700:4700::1111", true},
		{"127.0.0.1", false},
		{"127.9.9.9", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"172.32.0.1", true},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"fe80::1", false},
		{"fc00::1", false},
		{"fd00:ec2::254", false}, // cloud metadata over IPv6
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"100.64.0.1", false},
		{"255.255.255.255", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped loopback
		{"::ffff:10.0.0.1", false},
		{"64:ff9b::a00:1", false},  // NAT64 of 10.0.0.1
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"2002:a00:1::1", false},   // 6to4
	}
	for _, tt := range tests {
		if got := httpsource.PublicAddr(netip.MustParseAddr(tt.addr)); got != tt.public {
			t.Errorf("%s: public %v, want %v", tt.addr, got, tt.public)
		}
	}
}

// TestPrivateAddressesRefused shows the dial-time refusal with AllowPrivate
// false: an address, a host name whose DNS answer is loopback, and a redirect
// from a (test-declared) public server to a private one. No request reaches
// the private server, and nothing is retried.
func TestPrivateAddressesRefused(t *testing.T) {
	var private atomic.Int32
	inner := server(t, func(w http.ResponseWriter, r *http.Request) {
		private.Add(1)
		writeJSON(w, idItems("secret", 0, 1))
	})
	// The "public" server listens on 127.0.0.2, which the test declares public.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	outer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			writeJSON(w, idItems("pub", 0, 1))
			return
		}
		http.Redirect(w, r, inner.URL+"/x", http.StatusFound)
	}))
	outer.Listener.Close()
	outer.Listener = ln
	outer.Start()
	t.Cleanup(outer.Close)

	public127002 := func(ip netip.Addr) bool { return ip == netip.MustParseAddr("127.0.0.2") }
	opts := httpsource.WithPublicForTest(httpsource.Options{RetryInitial: time.Millisecond, Clock: newFakeClock()}, public127002)
	_, innerPort, _ := net.SplitHostPort(strings.TrimPrefix(inner.URL, "http://"))
	tests := []struct {
		name    string
		baseURL string
		path    string
		ok      bool
	}{
		{"loopback address", inner.URL, "/x", false},
		{"host name resolving to loopback", "http://localhost:" + innerPort, "/x", false},
		{"redirect inward", outer.URL, "/redirect", false},
		{"public server", outer.URL, "/ok", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, opts, map[string]any{"baseUrl": tt.baseURL}, nil)
			_, _, err := fetchAll(t, s, "x", map[string]any{"path": tt.path})
			if tt.ok {
				if err != nil {
					t.Fatalf("Fetch from the public server: %v", err)
				}
				return
			}
			if !errors.Is(err, httpsource.ErrAddressNotAllowed) {
				t.Fatalf("Fetch: %v, want ErrAddressNotAllowed", err)
			}
		})
	}
	if n := private.Load(); n != 0 {
		t.Errorf("the private server got %d requests", n)
	}
}

// TestCrossOriginRedirectDropsCredentials shows credentials in headers
// (Authorization and an API key header) not following a redirect to another
// origin, while a same-origin redirect keeps them.
func TestCrossOriginRedirectDropsCredentials(t *testing.T) {
	var gotKey, gotAuth atomic.Value
	other := server(t, func(w http.ResponseWriter, r *http.Request) {
		gotKey.Store(r.Header.Get("X-Api-Key"))
		gotAuth.Store(r.Header.Get("Authorization"))
		writeJSON(w, idItems("o", 0, 1))
	})
	first := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/final":
			if r.Header.Get("X-Api-Key") != "key-123456" {
				http.Error(w, "key lost on a same-origin redirect", http.StatusUnauthorized)
				return
			}
			writeJSON(w, idItems("f", 0, 1))
		default:
			http.Redirect(w, r, other.URL+"/elsewhere", http.StatusTemporaryRedirect)
		}
	})
	s := newSource(t, testOptions(), map[string]any{"baseUrl": first.URL, "authType": "apiKey", "apiKeyHeader": "X-API-Key",
		"headers": map[string]any{"Authorization": "Token not-really-a-secret"}}, map[string]string{"apiKey": "key-123456"})
	if _, _, err := fetchAll(t, s, "x", map[string]any{"path": "/same"}); err != nil {
		t.Fatalf("same-origin redirect: %v", err)
	}
	if _, _, err := fetchAll(t, s, "x", map[string]any{"path": "/away"}); err != nil {
		t.Fatal(err)
	}
	if k, a := gotKey.Load(), gotAuth.Load(); k != "" || a != "" {
		t.Errorf("the other origin got X-Api-Key %q and Authorization %q", k, a)
	}
}

// TestResponseSizeBounded shows every body read bounded by MaxResponseBytes:
// an endless response, a huge declared Content-Length, and one huge item all
// fail fast with ErrResponseTooLarge instead of exhausting memory.
func TestResponseSizeBounded(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/endless":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("["))
			chunk := []byte(strings.Repeat(`{"id":"x"},`, 1000))
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/declared":
			w.Header().Set("Content-Length", fmt.Sprint(100<<20))
			_, _ = w.Write([]byte("[]"))
		case "/huge-item":
			_, _ = w.Write([]byte(`[{"id":"a","blob":"`))
			for i := 0; i < 100 && r.Context().Err() == nil; i++ { // up to 100 MB
				if _, err := w.Write([]byte(strings.Repeat("x", 1<<20))); err != nil {
					return
				}
			}
			_, _ = w.Write([]byte(`"}]`))
		}
	})
	opts := testOptions()
	opts.MaxResponseBytes = 1 << 20
	s := newSource(t, opts, map[string]any{"baseUrl": srv.URL}, nil)
	for _, path := range []string{"/endless", "/declared", "/huge-item"} {
		t.Run(path, func(t *testing.T) {
			start := time.Now()
			_, pages, err := fetchAll(t, s, "x", map[string]any{"path": path})
			if !errors.Is(err, httpsource.ErrResponseTooLarge) {
				t.Fatalf("Fetch: %v, want ErrResponseTooLarge", err)
			}
			if len(pages) != 0 {
				t.Errorf("%d pages yielded from a response too large", len(pages))
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestNoSecretInErrors plants credentials and makes requests fail every way
// it can: refused, echoed back by the server in bodies and in redirect
// locations, unreachable servers, token endpoints that fail or echo, jq
// errors on token responses, bodies too large or not JSON, addresses
// refused, bad parameters. No error, nor any error it wraps, may contain a
// credential or an obtained token.
func TestNoSecretInErrors(t *testing.T) {
	const (
		token        = "planted-bearer-token-8c1f"
		password     = "planted-password-73ab"
		apiKey       = "planted-api-key-d00d"
		clientSecret = "planted-client-secret-5e5e"
		issued       = "planted-issued-token-aaaa"
	)
	secrets := []string{token, password, apiKey, clientSecret, issued}
	echo := func(w http.ResponseWriter, r *http.Request, status int) {
		// Echo everything the client sent: headers, query and body.
		b, _ := json.Marshal(map[string]any{"headers": r.Header, "query": r.URL.RawQuery, "form": r.Form})
		w.WriteHeader(status)
		_, _ = w.Write(b)
	}
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		switch r.URL.Path {
		case "/token-ok":
			writeJSON(w, map[string]any{"access_token": issued, "expires_in": 3600, "n": "x"})
		case "/token-echo":
			echo(w, r, http.StatusBadRequest)
		case "/redirect-loop":
			http.Redirect(w, r, "/redirect-loop?"+r.URL.RawQuery, http.StatusFound)
		case "/not-json":
			_, _ = fmt.Fprintf(w, "oops %s %s", r.Header.Get("Authorization"), r.URL.RawQuery)
		case "/big":
			_, _ = fmt.Fprintf(w, `[{"k": %q, "pad": "%s"}]`, r.URL.RawQuery, strings.Repeat("x", 4096))
		case "/data-echo":
			writeJSON(w, map[string]any{"auth": r.Header.Get("Authorization"), "q": r.URL.RawQuery})
		case "/unavailable":
			w.Header().Set("Retry-After", "1")
			echo(w, r, http.StatusServiceUnavailable)
		default:
			echo(w, r, http.StatusUnauthorized)
		}
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	opts := testOptions()
	opts.MaxRetries = 1
	opts.MaxResponseBytes = 1024
	basic := map[string]string{"username": "bob", "password": password}
	bearer := map[string]string{"token": token}
	key := map[string]string{"apiKey": apiKey}
	oauth := map[string]string{"clientId": "client", "clientSecret": clientSecret}
	tests := []struct {
		name     string
		params   map[string]any
		creds    map[string]string
		selector map[string]any
		private  bool // refuse private addresses
	}{
		{"bearer refused, echoed", map[string]any{"authType": "bearer"}, bearer, nil, false},
		{"basic refused, echoed", map[string]any{"authType": "basic"}, basic, nil, false},
		{"apiKey query refused, echoed", map[string]any{"authType": "apiKey", "apiKeyQuery": "key"}, key, nil, false},
		{"apiKey header refused", map[string]any{"authType": "apiKey", "apiKeyHeader": "X-Key"}, key, nil, false},
		{"apiKey query, redirect loop", map[string]any{"authType": "apiKey", "apiKeyQuery": "key"}, key, map[string]any{"path": "/redirect-loop"}, false},
		{"apiKey query, not JSON", map[string]any{"authType": "apiKey", "apiKeyQuery": "key"}, key, map[string]any{"path": "/not-json"}, false},
		{"bearer, not JSON", map[string]any{"authType": "bearer"}, bearer, map[string]any{"path": "/not-json"}, false},
		{"apiKey query, too large", map[string]any{"authType": "apiKey", "apiKeyQuery": "key"}, key, map[string]any{"path": "/big"}, false},
		{"apiKey query, 503 then out of retries", map[string]any{"authType": "apiKey", "apiKeyQuery": "key"}, key, map[string]any{"path": "/unavailable"}, false},
		{"bearer, jq error on data quoting it", map[string]any{"authType": "bearer"}, bearer, map[string]any{"path": "/data-echo", "dataPath": ".auth | tonumber"}, false},
		{"apiKey query, jq error on data quoting it", map[string]any{"authType": "apiKey", "apiKeyQuery": "key"}, key, map[string]any{"path": "/data-echo", "dataPath": ".q | error"}, false},
		{"apiKey query, unreachable", map[string]any{"baseUrl": closedURL, "authType": "apiKey", "apiKeyQuery": "key"}, key, nil, false},
		{"apiKey query, address refused", map[string]any{"authType": "apiKey", "apiKeyQuery": "key"}, key, nil, true},
		{"oauth2 token refused, echoed", map[string]any{"authType": "oauth2ClientCredentials", "tokenUrl": "/token-echo", "tokenAuthStyle": "body"}, oauth, nil, false},
		{"oauth2 token basic refused, echoed", map[string]any{"authType": "oauth2ClientCredentials", "tokenUrl": "/token-echo"}, oauth, nil, false},
		{"oauth2 token unreachable", map[string]any{"authType": "oauth2ClientCredentials", "tokenUrl": closedURL + "/t", "tokenAuthStyle": "body"}, oauth, nil, false},
		{"oauth2 issued token refused, echoed", map[string]any{"authType": "oauth2ClientCredentials", "tokenUrl": "/token-ok"}, oauth, nil, false},
		{"custom token refused, echoed", map[string]any{"authType": "custom", "customAuth": map[string]any{
			"request": map[string]any{"path": "/token-echo", "form": true, "body": map[string]any{"pw": "{{credentials.password}}"}},
			"headers": map[string]any{"X-Session": ".access_token"}}}, basic, nil, false},
		{"custom pick fails quoting the token", map[string]any{"authType": "custom", "customAuth": map[string]any{
			"request": map[string]any{"path": "/token-ok", "body": map[string]any{"pw": "{{credentials.password}}"}},
			"headers": map[string]any{"X-Session": ".access_token | tonumber"}}}, basic, nil, false},
		{"custom pick yields an object", map[string]any{"authType": "custom", "customAuth": map[string]any{
			"request": map[string]any{"path": "/token-ok"},
			"query":   map[string]any{"s": "{t: .access_token}"}}}, basic, nil, false},
		{"custom issued token refused, echoed", map[string]any{"authType": "custom", "customAuth": map[string]any{
			"request": map[string]any{"path": "/token-ok"},
			"query":   map[string]any{"session": ".access_token"}}}, basic, nil, false},
		{"baseUrl with a password", map[string]any{"baseUrl": "http://bob:" + password + "@127.0.0.1:1/"}, nil, nil, false},
		{"baseUrl unparsable with a password", map[string]any{"baseUrl": "http://bob:" + password + "@[::1/"}, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := map[string]any{"baseUrl": srv.URL}
			for k, v := range tt.params {
				params[k] = v
			}
			o := opts
			o.AllowPrivate = !tt.private
			var err error
			s, err := newSourceErr(o, params, tt.creds)
			if err == nil {
				sel := map[string]any{"path": "/api"}
				for k, v := range tt.selector {
					sel[k] = v
				}
				err = s.Fetch(t.Context(), source.Resource{Kind: "x", Selector: sel}, func(source.Page) error { return nil })
				if tt.name != "bearer, jq error on data quoting it" && tt.name != "apiKey query, jq error on data quoting it" {
					res := httpsource.TestConnection(t.Context(), o, params, tt.creds)
					for _, sec := range secrets {
						if strings.Contains(res.Message, sec) {
							t.Errorf("connection test message quotes a secret: %s", res.Message)
						}
					}
				}
			}
			if err == nil {
				t.Fatal("no error: the case does not fail")
			}
			for _, msg := range errorChain(err) {
				for _, sec := range secrets {
					// Not even a part: gojq cuts long values in its messages.
					if strings.Contains(msg, sec[:10]) {
						t.Errorf("an error quotes (a part of) %q:\n%s", sec, msg)
					}
				}
			}
			t.Logf("%v", err)
		})
	}
}

// TestTLSVerification shows verifyTls: a self-signed server is refused by
// default (and not retried: a certificate does not heal), and reachable
// with verifyTls false.
func TestTLSVerification(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		writeJSON(w, idItems("tls", 0, 1))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s := newSource(t, testOptions(), map[string]any{"baseUrl": srv.URL}, nil)
	_, _, err := fetchAll(t, s, "x", nil)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("self-signed server with verifyTls on: %v", err)
	}
	s = newSource(t, testOptions(), map[string]any{"baseUrl": srv.URL, "verifyTls": false}, nil)
	items, _, err := fetchAll(t, s, "x", nil)
	if err != nil || len(items) != 1 {
		t.Fatalf("verifyTls false: %d items, %v", len(items), err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d requests served, want 1: the refused handshakes reach no handler and are not retried", got)
	}
}

// TestTimeout shows the timeout parameter bounding one attempt.
func TestTimeout(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	})
	opts := testOptions()
	opts.MaxRetries = -1
	s := newSource(t, opts, map[string]any{"baseUrl": srv.URL, "timeout": 0.1}, nil)
	start := time.Now()
	_, _, err := fetchAll(t, s, "x", nil)
	var re *httpsource.RequestError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "Client.Timeout") {
		t.Fatalf("Fetch: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

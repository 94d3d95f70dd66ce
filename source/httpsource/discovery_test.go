package httpsource_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestPathParameters shows path parameters discovered by other requests:
// single, filtered, chained (a discovery that uses another parameter),
// several independent ones, and values that need escaping. Each item carries
// the values as .__<param>.
func TestPathParameters(t *testing.T) {
	var hits counter
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		hits.inc(r.URL.EscapedPath())
		p := r.URL.EscapedPath()
		switch {
		case p == "/teams":
			writeJSON(w, map[string]any{"teams": []any{
				map[string]any{"slug": "core", "active": true},
				map[string]any{"slug": "web", "active": false},
				map[string]any{"slug": "a%2Fb c", "active": true}, // needs escaping
				map[string]any{"slug": "core", "active": true},    // listed twice: fetched once
			}})
		case strings.HasPrefix(p, "/teams/") && strings.HasSuffix(p, "/members"):
			team := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/teams/"), "/members")
			writeJSON(w, []any{map[string]any{"id": team + ":m1"}, map[string]any{"id": team + ":m2"}})
		case p == "/orgs":
			writeJSON(w, []any{map[string]any{"id": 1}, map[string]any{"id": 2}})
		case p == "/orgs/1/repos":
			writeJSON(w, []any{map[string]any{"name": "r1"}})
		case p == "/orgs/2/repos":
			writeJSON(w, []any{map[string]any{"name": "r2"}, map[string]any{"name": "r3"}})
		case strings.HasPrefix(p, "/orgs/") && strings.Contains(p, "/repos/") && strings.HasSuffix(p, "/pulls"):
			parts := strings.Split(p, "/") // "", orgs, o, repos, r, pulls
			writeJSON(w, []any{map[string]any{"id": parts[2] + "/" + parts[4] + "#1"}})
		case p == "/regions":
			writeJSON(w, []any{"eu", "us"})
		case p == "/envs":
			writeJSON(w, map[string]any{"list": []any{map[string]any{"n": "prod"}, map[string]any{"n": "dev"}}})
		case strings.HasPrefix(p, "/clusters"):
			writeJSON(w, []any{map[string]any{"id": r.URL.Query().Get("region") + "-" + r.URL.Query().Get("env")}})
		case p == "/empty":
			writeJSON(w, []any{})
		default:
			http.NotFound(w, r)
		}
	})
	tests := []struct {
		name     string
		selector map[string]any
		want     []string // id, then the __ fields, as "id|__a=x|__b=y"
	}{
		{
			name: "single, with filter",
			selector: map[string]any{"path": "/teams/{team}/members", "pathParameters": map[string]any{
				"team": map[string]any{"path": "/teams", "dataPath": ".teams", "field": ".slug", "filter": ".active"},
			}},
			want: []string{"core:m1|__team=core", "core:m2|__team=core", "a%2Fb c:m1|__team=a%2Fb c", "a%2Fb c:m2|__team=a%2Fb c"},
		},
		{
			name: "chained",
			selector: map[string]any{"path": "/orgs/{org}/repos/{repo}/pulls", "pathParameters": map[string]any{
				"org":  map[string]any{"path": "/orgs", "field": ".id"},
				"repo": map[string]any{"path": "/orgs/{org}/repos", "field": ".name"},
			}},
			want: []string{"1/r1#1|__org=1|__repo=r1", "2/r2#1|__org=2|__repo=r2", "2/r3#1|__org=2|__repo=r3"},
		},
		{
			name: "two independent parameters, one in the query",
			selector: map[string]any{"path": "/clusters", "queryParams": map[string]any{"region": "{region}", "env": "{env}"}, "pathParameters": map[string]any{
				"region": map[string]any{"path": "/regions", "field": "."},
				"env":    map[string]any{"path": "/envs", "dataPath": ".list", "field": ".n"},
			}},
			// Parameters nest in order of use: the path's, then the query's by name.
			want: []string{"eu-prod|__env=prod|__region=eu", "us-prod|__env=prod|__region=us", "eu-dev|__env=dev|__region=eu", "us-dev|__env=dev|__region=us"},
		},
		{
			name: "nothing discovered, nothing fetched",
			selector: map[string]any{"path": "/teams/{team}/members", "pathParameters": map[string]any{
				"team": map[string]any{"path": "/empty", "field": ".slug"},
			}},
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, testOptions(), map[string]any{"baseUrl": srv.URL}, nil)
			items, _, err := fetchAll(t, s, "x", tt.selector)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			var got []string
			for _, it := range items {
				parts := []string{it["id"].(string)}
				var keys []string
				for k := range it {
					if strings.HasPrefix(k, "__") {
						keys = append(keys, k)
					}
				}
				slices.Sort(keys)
				for _, k := range keys {
					v, _ := json.Marshal(it[k])
					parts = append(parts, k+"="+strings.Trim(string(v), `"`))
				}
				got = append(got, strings.Join(parts, "|"))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("items\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	if n := hits.get("/teams/core/members"); n != 1 {
		t.Errorf("/teams/core/members fetched %d times, want 1 (values are deduplicated)", n)
	}
	if n := hits.get("/teams/a%252Fb%20c/members"); n != 1 {
		t.Errorf("the escaped team fetched %d times, want 1", n)
	}
	if n := hits.get("/regions"); n != 1 {
		t.Errorf("/regions discovered %d times, want 1: it depends on no other parameter", n)
	}
	if n := hits.get("/teams/web/members"); n != 0 {
		t.Errorf("the filtered-out team was fetched")
	}
}

// TestPathParameterErrors checks discovery definitions refused before any
// request, and a discovery that fails failing the fetch.
func TestPathParameterErrors(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/teams":
			writeJSON(w, []any{map[string]any{"slug": map[string]any{"nested": true}}})
		default:
			http.Error(w, "down", http.StatusInternalServerError)
		}
	})
	tests := []struct {
		name     string
		selector map[string]any
		want     string
	}{
		{"undefined", map[string]any{"path": "/t/{team}"}, "uses {team}, which selector.pathParameters does not define"},
		{"cycle", map[string]any{"path": "/t/{a}", "pathParameters": map[string]any{
			"a": map[string]any{"path": "/a/{b}", "field": "."}, "b": map[string]any{"path": "/b/{a}", "field": "."}}}, "depends on itself"},
		{"unused", map[string]any{"path": "/t", "pathParameters": map[string]any{"a": map[string]any{"path": "/a", "field": "."}}}, "is not used"},
		{"no field", map[string]any{"path": "/t/{a}", "pathParameters": map[string]any{"a": map[string]any{"path": "/a"}}}, "field is required"},
		{"misspelt field", map[string]any{"path": "/t/{a}", "pathParameters": map[string]any{"a": map[string]any{"path": "/a", "field": ".", "filtr": "."}}}, "unknown fields filtr"},
		{"discovery fails", map[string]any{"path": "/t/{a}", "pathParameters": map[string]any{"a": map[string]any{"path": "/down", "field": "."}}}, "path parameter a: discovery: GET"},
		{"value not a scalar", map[string]any{"path": "/t/{a}", "pathParameters": map[string]any{"a": map[string]any{"path": "/teams", "field": ".slug"}}}, "yielded an object, not a string or number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSource(t, testOptions(), map[string]any{"baseUrl": srv.URL}, nil)
			_, _, err := fetchAll(t, s, "x", tt.selector)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Fetch: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

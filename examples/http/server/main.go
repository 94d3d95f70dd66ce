// Command server is a tiny REST API for the http source example: teams and
// their services, as paginated JSON behind a bearer token, at
// http://127.0.0.1:8099/api. It uses the standard library only.
//
//	GET /api/teams?page=N&per_page=M       page pagination, {"teams": [...], "hasMore": bool}
//	GET /api/teams/{team}/services?cursor= cursor pagination, {"items": [...], "next": "..." | null}
//
// Every request needs "Authorization: Bearer dev-token".
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strconv"
	"strings"
)

// team is a team of the example API.
type team struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Slack string `json:"slack"`
}

// service is a service a team owns.
type service struct {
	Name     string `json:"name"`
	Language string `json:"language"`
	Tier     int    `json:"tier"`
	Archived bool   `json:"archived,omitempty"`
}

var teams = []team{
	{"payments", "Payments", "https://example.slack.com/archives/C01"},
	{"search", "Search", "https://example.slack.com/archives/C02"},
	{"platform", "Platform", "https://example.slack.com/archives/C03"},
}

var services = map[string][]service{
	"payments": {{"checkout", "go", 1, false}, {"ledger", "go", 1, false}, {"invoices", "python", 2, false}, {"refunds-v1", "ruby", 3, true}},
	"search":   {{"indexer", "rust", 2, false}, {"query-api", "go", 1, false}},
	"platform": {{"gateway", "go", 1, false}, {"auth", "go", 1, false}, {"billing-ui", "typescript", 2, false}},
}

// token is the bearer token the API accepts; the example's manifest sends it.
const token = "dev-token"

func main() {
	addr := flag.String("addr", "127.0.0.1:8099", "address to listen on")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/teams", listTeams)
	mux.HandleFunc("GET /api/teams/{team}/services", listServices)
	log.Printf("example API on http://%s/api (bearer token %q)", *addr, token)
	log.Fatal(http.ListenAndServe(*addr, logRequests(requireToken(mux))))
}

// requireToken refuses requests without the bearer token.
func requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// logRequests logs each request's method, URL and status.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Printf("%s %s -> %d", r.Method, r.URL.RequestURI(), rec.status)
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the status and writes it.
func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// listTeams serves one page of teams: page (from 1) and per_page (default 2).
func listTeams(w http.ResponseWriter, r *http.Request) {
	page := intParam(r, "page", 1)
	per := intParam(r, "per_page", 2)
	if page < 1 || per < 1 || per > 100 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "page >= 1 and 1 <= per_page <= 100"})
		return
	}
	lo := min((page-1)*per, len(teams))
	hi := min(lo+per, len(teams))
	writeJSON(w, http.StatusOK, map[string]any{"teams": teams[lo:hi], "page": page, "hasMore": hi < len(teams)})
}

// listServices serves a team's services two at a time; the cursor is the
// index of the next one, opaque to clients.
func listServices(w http.ResponseWriter, r *http.Request) {
	list, ok := services[r.PathValue("team")]
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such team"})
		return
	}
	at := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(c, "svc-"))
		if err != nil || n < 0 || n > len(list) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad cursor"})
			return
		}
		at = n
	}
	hi := min(at+2, len(list))
	var next any
	if hi < len(list) {
		next = "svc-" + strconv.Itoa(hi)
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list[at:hi], "next": next})
}

// intParam reads an integer query parameter, or def.
func intParam(r *http.Request, name string, def int) int {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return -1
	}
	return n
}

// writeJSON writes v as JSON with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

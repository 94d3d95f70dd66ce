package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is written by the dev command and read by the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevDemo runs `configsync dev --demo` as the README says: everything in one
// process (embedded NATS, in-process Redis), the bundled example synced and printed.
func TestDevDemo(t *testing.T) {
	var out, errOut syncBuffer
	env := &environment{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, environ: []string{"CONFIGSYNC_LOG_LEVEL=warn"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	data := t.TempDir()
	go func() {
		done <- dispatch(ctx, env, []string{"dev", "--demo", "--data", data, "--http-addr", "127.0.0.1:0"})
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "demo: try") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("demo did not finish; stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
		select {
		case code := <-done:
			t.Fatalf("dev exited %d; stdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	got := out.String()
	// The printed token reads the synced entities over the API, as the README shows.
	base := regexp.MustCompile(`API on (http://\S+)`).FindStringSubmatch(got)
	tok := regexp.MustCompile(`export TOKEN=(\S+)`).FindStringSubmatch(got)
	if base == nil || tok == nil {
		cancel()
		t.Fatalf("dev printed no API address or token:\n%s", got)
	}
	req, _ := http.NewRequest("GET", base[1]+"/v1/tenants/demo/blueprints/service/entities", nil)
	req.Header.Set("Authorization", "Bearer "+tok[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"identifier":"checkout"`) {
		t.Errorf("entities over the API: %d %s", resp.StatusCode, body)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("dev exited %d after cancellation; stderr:\n%s", code, errOut.String())
	}
	for _, want := range []string{
		"integration demo/inventory stored with config version 1",
		": succeeded",
		"service    fetched 6, selected 5, upserted 5, unchanged 0, failed 0, deleted 0",
		"team       fetched 3, selected 3, upserted 3",
		"demo/service: 5 entities",
		`checkout     "CHECKOUT"               inventory cluster→prod-eu team→payments`,
		"demo/cluster: 2 entities",
		`prod-eu      ""                       barebones`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q:\n%s", want, got)
		}
	}
	if _, err := os.Stat(data + "/encryption.key"); err != nil {
		t.Errorf("dev did not keep its generated key: %v", err)
	}
}

// TestApplyAndResyncThroughTheAPI: `configsync apply -f` declares a blueprint and an
// integration over the API (twice: it is idempotent), and `configsync resync --wait`
// follows the run to its end.
func TestApplyAndResyncThroughTheAPI(t *testing.T) {
	var out, errOut syncBuffer
	env := &environment{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, environ: []string{"CONFIGSYNC_LOG_LEVEL=warn"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := t.TempDir()
	done := make(chan int, 1)
	go func() { done <- dispatch(ctx, env, []string{"dev", "--data", data, "--http-addr", "127.0.0.1:0"}) }()
	var base, tok []string
	deadline := time.Now().Add(30 * time.Second)
	for base == nil || tok == nil {
		if time.Now().After(deadline) {
			t.Fatalf("dev did not start:\n%s\n%s", out.String(), errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
		base = regexp.MustCompile(`API on (http://\S+)`).FindStringSubmatch(out.String())
		tok = regexp.MustCompile(`export TOKEN=(\S+)`).FindStringSubmatch(out.String())
	}
	files := t.TempDir()
	if err := os.MkdirAll(data+"/files", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(data+"/files/teams.json", []byte(`[{"id": "payments"}, {"id": "search"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := `kind: blueprint
tenant: default
spec: {identifier: team, title: Team, schema: {properties: {}}, relations: {}}
---
kind: integration
tenant: default
spec:
  id: teams
  displayName: Teams
  type: file
  parameters: {root: ` + data + `/files}
  config:
    resources:
      - kind: team
        selector: {query: 'true', path: teams.json}
        port: {entity: {mappings: {identifier: .id, blueprint: '"team"'}}}
`
	if err := os.WriteFile(files+"/teams.yaml", []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	client := []string{"--api-url", base[1], "--token", tok[1]}
	for i, want := range []string{"integration default/teams created", "integration default/teams updated"} {
		code, stdout, stderr := runCLI(t, "", append([]string{"apply", "-f", files}, client...)...)
		if code != 0 || !strings.Contains(stdout, want) || !strings.Contains(stdout, "blueprint default/team") {
			t.Fatalf("apply %d: exit %d\n%s%s", i+1, code, stdout, stderr)
		}
	}
	code, stdout, stderr := runCLI(t, "", append([]string{"resync", "--integration", "teams", "--wait"}, client...)...)
	if code != 0 || !regexp.MustCompile(`run run-\S+ succeeded`).MatchString(stdout) || !strings.Contains(stdout, "team         fetched 2") {
		t.Fatalf("resync --wait: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, "", "resync", "--integration", "nope", "--api-url", base[1], "--token", tok[1])
	if code != 1 || !strings.Contains(stderr, "404") {
		t.Fatalf("resync of an unknown integration: exit %d %s", code, stderr)
	}
	cancel()
	<-done
}

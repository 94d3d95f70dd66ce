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

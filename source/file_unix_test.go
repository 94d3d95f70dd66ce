//go:build unix

package source_test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileRefusesSpecialFiles checks that a named pipe, which would block a
// reader forever, is refused without being opened, by path and by glob.
func TestFileRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"d/a.json": `[{"a":1}]`})
	if err := syscall.Mkfifo(filepath.Join(dir, "d", "pipe.json"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	s, err := newFile(t, []string{dir}, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d/pipe.json", "d/*.json"} {
		done := make(chan error, 1)
		go func() {
			_, _, err := fetchAll(t.Context(), s, res("x", p))
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "d/pipe.json: a named pipe, not a regular file") {
				t.Errorf("%s: %v", p, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the fetch blocked on a named pipe", p)
		}
	}
}

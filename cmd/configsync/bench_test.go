package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestTimeProcessPeakRSS: a child's peak RSS is its own, not this process's. With 128
// MiB of this process in use, a sleeping shell must measure well under it (its
// rusage maxrss would not: the child shares this memory until exec), and a child that
// holds 64 MiB must measure at least that.
func TestTimeProcessPeakRSS(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	ballast := make([]byte, 128<<20)
	for i := range ballast {
		ballast[i] = byte(i)
	}
	out := filepath.Join(t.TempDir(), "out")
	small, err := timeProcess(context.Background(), out, sh, "-c", "sleep 0.2")
	if err != nil {
		t.Fatal(err)
	}
	if small.maxRSS <= 0 || small.maxRSS >= 32<<20 {
		t.Errorf("a sleeping shell's peak RSS: %d MiB, want more than 0 and under 32", small.maxRSS>>20)
	}
	big, err := timeProcess(context.Background(), out, sh, "-c", `x=$(head -c 67108864 /dev/zero | tr '\0' a); sleep 0.2; echo ${#x}`)
	if err != nil {
		t.Fatal(err)
	}
	if big.maxRSS < 64<<20 {
		t.Errorf("a shell holding 64 MiB: peak RSS %d MiB, want at least 64", big.maxRSS>>20)
	}
	runtime.KeepAlive(ballast)
}

package worker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
)

// TestHelperSigtermWorker is not a test: TestFaultSIGTERMWorkerReleasesItsRun runs the
// test binary again with it, as a worker process that stops on SIGTERM the way
// `configsync worker` does (signal.NotifyContext, Worker.Run returns, NATS drained,
// Redis closed), with the production lease TTL (30 s) and shutdown grace (10 s).
func TestHelperSigtermWorker(t *testing.T) {
	if os.Getenv("CS_HELPER_SIGTERM") != "1" {
		t.Skip("runs only as the child of TestFaultSIGTERMWorkerReleasesItsRun")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	w, nc, rdb := childWorker(t, "terminated", 30*time.Second, time.Second)
	if err := w.Run(ctx); err != nil {
		t.Errorf("worker: %v", err)
	}
	returned := time.Now()
	if err := nc.Drain(); err == nil {
		for deadline := time.Now().Add(10 * time.Second); !nc.IsClosed() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	nc.Close()
	_ = rdb.Close()
	fmt.Printf("CHILD: Run returned; NATS drained in %v\n", time.Since(returned))
}

// TestFaultSIGTERMWorkerReleasesItsRun sends SIGTERM to a worker process in the
// middle of a long run. The process takes no new work (an event published after the
// signal is run by another worker), gives its run the shutdown grace, then stops it
// (recorded failed, "shutting down", nothing deleted), nakks the event and releases
// the lease, and exits 0 within 35 s. Another worker then completes the event: the
// catalog ends as expected and no run record is left running.
func TestFaultSIGTERMWorkerReleasesItsRun(t *testing.T) {
	start := time.Now()
	e := newEnv(t)
	e.putBlueprints()
	ctx := context.Background()
	key, _ := secrets.GenerateKey()
	kr, _ := secrets.ParseKeyring(key, "")
	e.ints = integration.NewStore(e.rdb, e.prefix, kr)
	slowIntegration(e, "slow", 90, 250) // 22 s of fetching: longer than the grace
	slowIntegration(e, "other", 3, 10)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSigtermWorker$", "-test.v")
	cmd.Env = append(os.Environ(), "CS_HELPER_SIGTERM=1", "CS_NATS_URL="+e.ns.ClientURL(),
		"CS_REDIS_URL="+redisURL(), "CS_PREFIX="+e.prefix, "CS_KEY="+key)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("worker process output:\n%s", out.String())
		}
	})
	e.patch("slow", prefixedSlowConfig("slow", "v1"))

	var term *run.Record
	waitUntil(t, 60*time.Second, "the child in the middle of its run", func() bool {
		r, err := e.runs.Latest(ctx, e.tenant, "slow")
		if err != nil || r.Status != run.Running || r.Worker != "terminated" || r.Counts["service"] == nil || r.Counts["service"].Fetched < 50 {
			return false
		}
		term = r
		return true
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	// Work published once the worker has seen the signal must not be taken by it.
	// (Signal returns before the child handles it: publishing at once raced it.)
	waitUntil(t, 10*time.Second, "the child seeing the signal", func() bool {
		return strings.Contains(out.String(), "worker stopping")
	})
	e.patch("other", prefixedSlowConfig("other", "v1"))

	var exitErr error
	select {
	case exitErr = <-exited:
	case <-time.After(90 * time.Second):
		t.Fatalf("the worker did not exit within 90s of SIGTERM")
	}
	exitTook := time.Since(signalled)
	if exitErr != nil {
		t.Fatalf("the worker exited with %v after SIGTERM, want status 0", exitErr)
	}
	if exitTook > 35*time.Second {
		t.Errorf("the worker took %v to exit after SIGTERM, more than 35s", exitTook)
	}
	// Its run is settled (not left running), and its lease is released.
	stopped, err := e.runs.Get(ctx, e.tenant, term.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stopped.Status == run.Running || stopped.Status == run.Queued {
		t.Fatalf("the terminated worker left its run %s", stopped.Status)
	}
	if stopped.Status != run.Succeeded && (stopped.Status != run.Failed || counts(stopped, "service").Deleted != 0) {
		t.Fatalf("the terminated worker's run: %s %q", stopped.Status, stopped.Message)
	}
	if _, held, err := e.leases.Token(ctx, e.tenant, "slow"); err != nil || held {
		t.Fatalf("the lease of slow is still held after the worker exited (err %v)", err)
	}
	if recs, _, _ := e.runs.List(ctx, e.tenant, "other", 0, 10); len(recs) != 0 {
		t.Fatalf("the stopping worker took new work: %d runs of other, by %s", len(recs), recs[0].Worker)
	}

	// The source got faster; another worker completes the event.
	if _, err := e.ints.Put(ctx, integrationOf(e.tenant, "slow", "slow", map[string]any{"pages": 90, "delayMs": 1}), nil); err != nil {
		t.Fatal(err)
	}
	e.startWorker("survivor")
	waitUntil(t, 2*time.Minute, "the survivor completing both integrations", func() bool {
		a, err1 := e.runs.Latest(ctx, e.tenant, "slow")
		b, err2 := e.runs.Latest(ctx, e.tenant, "other")
		return e.commandsLeft() == 0 && err1 == nil && err2 == nil && a.Status.Done() && b.Status.Done() &&
			(stopped.Status == run.Succeeded || a.ID != stopped.ID)
	})
	for _, id := range []string{"slow", "other"} {
		recs, _, err := e.runs.List(ctx, e.tenant, id, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Status == run.Running || r.Status == run.Queued {
				t.Errorf("%s: run %s left %s", id, r.ID, r.Status)
			}
		}
		if recs[0].Status != run.Succeeded {
			t.Errorf("%s: last run %s %q by %s", id, recs[0].Status, recs[0].Message, recs[0].Worker)
		}
		if id == "other" && recs[0].Worker != "survivor" {
			t.Errorf("other was run by %s", recs[0].Worker)
		}
	}
	var want []string
	for i := range 900 {
		want = append(want, fmt.Sprintf(`slow-s%d slow {"lang":"v1"} {"team":"t"}`, i))
	}
	for i := range 30 {
		want = append(want, fmt.Sprintf(`other-s%d other {"lang":"v1"} {"team":"t"}`, i))
	}
	sort.Strings(want)
	e.wantEntities("service", want...)
	e.wantEntities("team", `t - {} {}`)
	t.Logf("SIGTERM at %d of 900 items fetched; the worker exited 0 after %v; its run: %s %q; then the survivor completed it; took %v",
		term.Counts["service"].Fetched, exitTook.Round(time.Millisecond), stopped.Status, stopped.Message, time.Since(start).Round(time.Millisecond))
}

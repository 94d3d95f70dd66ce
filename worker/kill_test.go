package worker

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/configsync/configsync/catalog"
	"github.com/configsync/configsync/integration"
	"github.com/configsync/configsync/lease"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// TestHelperWorkerProcess is not a test: TestKilledWorkerRunIsTakenOver runs the test
// binary again with it, as a worker process it can kill.
func TestHelperWorkerProcess(t *testing.T) {
	if os.Getenv("CS_HELPER_WORKER") != "1" {
		t.Skip("runs only as the child of TestKilledWorkerRunIsTakenOver")
	}
	w, _, _ := childWorker(t, "doomed", 2*time.Second, 500*time.Millisecond)
	_ = w.Run(context.Background()) // until killed
}

// childWorker builds, in a child test process, a worker on the NATS, Redis, key prefix
// and encryption key its parent passes in CS_NATS_URL, CS_REDIS_URL, CS_PREFIX and
// CS_KEY, with the slow source type; it returns the connections for the caller to
// close.
func childWorker(t *testing.T, id string, leaseTTL, heartbeat time.Duration) (*Worker, *nats.Conn, redis.UniversalClient) {
	t.Helper()
	nc, err := nats.Connect(os.Getenv("CS_NATS_URL"), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(context.Background(), js, queue.Options{AckWait: 3 * time.Second, MaxDeliver: -1})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := redis.ParseURL(os.Getenv("CS_REDIS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	prefix := os.Getenv("CS_PREFIX")
	kr, err := secrets.ParseKeyring(os.Getenv("CS_KEY"), "")
	if err != nil {
		t.Fatal(err)
	}
	w := New(Config{ID: id, LeaseTTL: leaseTTL, Heartbeat: heartbeat}, Deps{
		Redis: rdb, Prefix: prefix, Queue: q, Integrations: integration.NewStore(rdb, prefix, kr),
		Runs: run.NewStore(rdb, prefix), Catalog: catalog.New(rdb, prefix, nil), Leases: lease.New(rdb, prefix, leaseTTL),
		Sources: source.NewRegistry(slowType()), Log: zap.NewExample(),
	})
	return w, nc, rdb
}

// TestKilledWorkerRunIsTakenOver kills (SIGKILL) a worker process in the middle of a
// run. The event is redelivered, another worker takes the run over under a new run
// id once the lease expires, marks the dead run failed ("worker lost"), and completes.
func TestKilledWorkerRunIsTakenOver(t *testing.T) {
	e := newEnv(t)
	e.putBlueprints()
	slowIntegration(e, "slow", 30, 100) // 3 s of fetching
	key, _ := secrets.GenerateKey()
	kr, _ := secrets.ParseKeyring(key, "")
	e.ints = integration.NewStore(e.rdb, e.prefix, kr)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorkerProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "CS_HELPER_WORKER=1", "CS_NATS_URL="+e.ns.ClientURL(),
		"CS_REDIS_URL="+redisURL(), "CS_PREFIX="+e.prefix, "CS_KEY="+key)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			time.Sleep(time.Second)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("worker process output:\n%s", out.String())
		}
	})
	e.patch("slow", slowConfig)

	// Wait until the child is mid-run, with some entities written.
	var doomed *run.Record
	waitFor(t, func() bool {
		r, err := e.runs.Latest(context.Background(), e.tenant, "slow")
		if err != nil || r.Status != run.Running || r.Worker != "doomed" {
			return false
		}
		doomed = r
		return len(e.entities("service")) >= 50
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killedAt := time.Now()

	e.startWorker("survivor")
	var final *run.Record
	waitFor(t, func() bool {
		r, err := e.runs.Latest(context.Background(), e.tenant, "slow")
		if err != nil || r.ID == doomed.ID || !r.Status.Done() {
			return false
		}
		final = r
		return true
	})
	if final.Status != run.Succeeded || final.Worker != "survivor" {
		t.Fatalf("takeover run: %+v", final)
	}
	lost, err := e.runs.Get(context.Background(), e.tenant, doomed.ID)
	if err != nil || lost.Status != run.Failed || lost.Message != "worker lost" {
		t.Fatalf("the dead run: %+v %v", lost, err)
	}
	if took := time.Since(killedAt); took > 60*time.Second {
		t.Errorf("takeover took %v, more than 60s", took)
	}
	if n := len(e.entities("service")); n != 300 {
		t.Fatalf("%d services after the takeover, want 300", n)
	}
}

func redisURL() string {
	if u := os.Getenv("CONFIGSYNC_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// lockedBuffer collects a child's output from two pipes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

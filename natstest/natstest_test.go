package natstest_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/configsync/configsync/natstest"
)

func TestServerJetStreamAndRestart(t *testing.T) {
	s := natstest.Server(t)
	port := natstest.Port(t, s)
	js := natstest.JetStream(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("creating a stream: %v", err)
	}
	if _, err := js.Publish(ctx, "t.one", []byte("1")); err != nil {
		t.Fatalf("publishing: %v", err)
	}

	s2 := natstest.Restart(t, s)
	if s.Running() {
		t.Error("the old server still runs after Restart")
	}
	if got := natstest.Port(t, s2); got != port {
		t.Errorf("restarted on port %d, want the same port %d", got, port)
	}
	// The old connection reconnects by itself to the same URL, and the stream was
	// recovered from the store. Each look-up has a time limit of its own: one sent
	// while the connection is still down gets no answer, and without its own limit it
	// waited out the whole test's (a loaded CI run failed so).
	var st jetstream.Stream
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		st, err = js.Stream(actx, "T")
		acancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the stream after restart: %v", err)
	}
	if msg, err := st.GetMsg(ctx, 1); err != nil || string(msg.Data) != "1" {
		t.Fatalf("the message after restart: %v, %v", msg, err)
	}

	// Restarting twice works too (the options were kept for the new server).
	s3 := natstest.Restart(t, s2)
	if got := natstest.Port(t, s3); got != port {
		t.Errorf("second restart on port %d, want %d", got, port)
	}
}

func TestServersAreIsolated(t *testing.T) {
	a, b := natstest.Server(t), natstest.Server(t)
	if a.ClientURL() == b.ClientURL() {
		t.Fatalf("two servers share the URL %s", a.ClientURL())
	}
	if a.StoreDir() == b.StoreDir() {
		t.Fatalf("two servers share the store %s", a.StoreDir())
	}
}

// TestChildProcessReachesServer runs this test binary again as a child that
// publishes to the server by its URL, as a test of a command's main would.
func TestChildProcessReachesServer(t *testing.T) {
	if url := os.Getenv("NATSTEST_CHILD_URL"); url != "" {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatalf("child: connecting to %s: %v", url, err)
		}
		defer nc.Close()
		if err := nc.Publish("child.hello", []byte("hi")); err != nil {
			t.Fatalf("child: publishing: %v", err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatalf("child: flushing: %v", err)
		}
		return
	}
	s := natstest.Server(t)
	nc := natstest.Connect(t, s)
	sub, err := nc.SubscribeSync("child.hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcessReachesServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NATSTEST_CHILD_URL="+s.ClientURL())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no message from the child process: %v", err)
	}
	if string(msg.Data) != "hi" {
		t.Fatalf("child sent %q, want %q", msg.Data, "hi")
	}
}

// Package natstest runs real NATS servers with JetStream inside a test process, so
// that tests exercise the server configsync runs on (nats-server/v2 as a library)
// instead of a mock or whatever nats-server binary the machine happens to have.
//
// Each server listens on 127.0.0.1 on a free port chosen by the kernel and keeps its
// JetStream store in t.TempDir(), so tests in parallel and engineers sharing a
// machine do not collide. Child processes of a test reach it by s.ClientURL().
package natstest

import (
	"net"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxPayload is the servers' max_payload: 9 MiB, so that an event at the queue's
// 8 MiB bound plus its headers is accepted, as a production server is configured to.
// (nats-server's default is 1 MiB.)
const MaxPayload = 9 << 20

// readyTimeout is how long a server may take to accept connections; generous, as the
// machine is shared and the race detector is slow.
const readyTimeout = 20 * time.Second

// started remembers the options each server was started with so that Restart can
// bring it back on the same port and store even after it was shut down (a shut-down
// server no longer reports its store).
var started sync.Map // *server.Server -> server.Options

// Server starts a NATS server with JetStream on 127.0.0.1 on a free port with a store
// in t.TempDir(), waits until it accepts connections, and shuts it down when the test
// ends. Its URL is s.ClientURL().
func Server(t testing.TB) *server.Server {
	t.Helper()
	return start(t, server.Options{
		ServerName: "natstest",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		MaxPayload: MaxPayload,
		NoLog:      true,
		NoSigs:     true,
		// No HTTP monitoring, cluster or leaf ports: nothing else to collide on.
	})
}

// Restart shuts s down (if it is still running) and starts a new server on the same
// port and JetStream store, so what s had stored is there again and clients of s
// reconnect to it by the same URL. It is for fault tests: a server outage, a restart
// with persisted streams and consumers.
func Restart(t testing.TB, s *server.Server) *server.Server {
	t.Helper()
	v, ok := started.Load(s)
	if !ok {
		t.Fatalf("natstest.Restart: server %s was not started by natstest.Server", s.ID())
	}
	opts := v.(server.Options)
	s.Shutdown()
	s.WaitForShutdown()
	return start(t, opts)
}

// Port returns the port s listens on (the same after a Restart).
func Port(t testing.TB, s *server.Server) int {
	t.Helper()
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		t.Fatalf("natstest: parsing client URL %q: %v", s.ClientURL(), err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("natstest: port of client URL %q: %v", s.ClientURL(), err)
	}
	return p
}

func start(t testing.TB, opts server.Options) *server.Server {
	t.Helper()
	o := opts // the server keeps and changes its copy
	s, err := server.NewServer(&o)
	if err != nil {
		t.Fatalf("natstest: configuring nats-server: %v", err)
	}
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
		started.Delete(s)
	})
	if !s.ReadyForConnections(readyTimeout) {
		t.Fatalf("natstest: nats-server on %s:%d not ready within %s", opts.Host, opts.Port, readyTimeout)
	}
	if !s.JetStreamEnabled() {
		t.Fatal("natstest: nats-server started without JetStream")
	}
	// Keep the port the kernel chose, so that a restart gets the same URL.
	if addr, ok := s.Addr().(*net.TCPAddr); ok {
		opts.Port = addr.Port
	}
	started.Store(s, opts)
	return s
}

// Connect opens a client connection to s that keeps reconnecting (every 50ms, without
// limit) while the test runs, so a Restart does not break it, and closes it when the
// test ends.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	all := append([]nats.Option{
		nats.Name(t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}, opts...)
	nc, err := nats.Connect(s.ClientURL(), all...)
	if err != nil {
		t.Fatalf("natstest: connecting to %s: %v", s.ClientURL(), err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream connects to s as Connect does and returns a JetStream context on the
// connection.
func JetStream(t testing.TB, s *server.Server, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(Connect(t, s, opts...))
	if err != nil {
		t.Fatalf("natstest: JetStream context on %s: %v", s.ClientURL(), err)
	}
	return js
}

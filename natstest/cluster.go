package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// clusterReadyTimeout bounds the routes' meshing and the JetStream meta leader's
// election; generous for a shared machine and the race detector.
const clusterReadyTimeout = 30 * time.Second

// Cluster starts n NATS servers with JetStream in this process, joined by routes into
// one cluster (named "natstest"), so that fault tests can run what production runs:
// replicated streams (queue.Options.Replicas) and a node lost under load. Each server
// listens for clients on a free 127.0.0.1 port and for routes on another, keeps its
// store in its own t.TempDir(), and is shut down when the test ends. Cluster returns
// once every server has a route to every other and JetStream has a meta leader that
// every server follows. Restart works on its servers (same ports and store).
// ClientURLs gives the URL list a client should connect with.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest.Cluster: %d servers; want at least 1 (3 for replicated streams)", n)
	}
	routePorts := freeClusterPorts(t, n)
	routes := make([]*url.URL, n)
	for i, p := range routePorts {
		routes[i] = &url.URL{Scheme: "nats-route", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))}
	}
	servers := make([]*server.Server, n)
	for i := range servers {
		servers[i] = start(t, server.Options{
			ServerName: fmt.Sprintf("natstest-%d", i+1), // JetStream clustering needs unique names
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			MaxPayload: MaxPayload,
			NoLog:      true,
			NoSigs:     true,
			Cluster: server.ClusterOpts{
				Name: "natstest",
				Host: "127.0.0.1",
				Port: routePorts[i],
			},
			Routes: routes, // its own route is recognised and skipped
		})
	}
	waitCluster(t, servers)
	return servers
}

// ClientURLs is the comma-separated client URL list of servers, as nats.Connect and
// --nats-url take it.
func ClientURLs(servers []*server.Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// waitCluster waits until the routes are meshed and JetStream's meta group has a
// leader that every server is current with.
func waitCluster(t testing.TB, servers []*server.Server) {
	t.Helper()
	deadline := time.Now().Add(clusterReadyTimeout)
	for {
		routed, leaders, current := 0, 0, 0
		for _, s := range servers {
			if s.NumRoutes() >= len(servers)-1 {
				routed++
			}
			if s.JetStreamIsLeader() {
				leaders++
			}
			if s.JetStreamIsCurrent() {
				current++
			}
		}
		if routed == len(servers) && leaders == 1 && current == len(servers) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest.Cluster: not formed within %s: %d of %d servers fully routed, %d meta leaders, %d current",
				clusterReadyTimeout, routed, len(servers), leaders, current)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeClusterPorts returns n distinct free 127.0.0.1 ports for the route listeners,
// which must be known before any server starts, as each server's routes name them.
func freeClusterPorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: finding a free port: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

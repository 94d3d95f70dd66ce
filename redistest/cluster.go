package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterMasters is how many masters Cluster starts: the fewest a Redis Cluster
// accepts, and enough that keys spread over several nodes.
const ClusterMasters = 3

// clusterReadyTimeout bounds the start of the servers and the cluster's convergence;
// generous, as the machine is shared and tests run with the race detector.
const clusterReadyTimeout = 30 * time.Second

// Cluster starts a Redis Cluster of its own for the test, so that code written for
// the hash tags and multi-key scripts of a cluster is tested on one rather than on a
// single node, where a CROSSSLOT mistake cannot show: three redis-server processes
// (the binary on PATH, Redis 7.0 or newer) on free loopback ports, with no
// persistence and their files in t.TempDir(), each master of a third of the 16384
// slots, no replicas. It waits until every node reports cluster_state:ok and knows the
// whole slot map, and returns a cluster client over the three. Cleanup closes the
// client and kills the processes.
//
// Without redis-server the test is skipped on a developer's machine, and fails when
// CI is set (scripts/services installs redis-server there), so that CI never passes
// by skipping.
func Cluster(t testing.TB) redis.UniversalClient {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redistest: redis-server is not on PATH (%v): the Redis Cluster tests need it; scripts/services installs it", err)
		}
		t.Skipf("redistest: redis-server is not on PATH (%v); install it (scripts/services) to run the Redis Cluster tests", err)
	}
	dir := t.TempDir()
	ports := freePorts(t, 2*ClusterMasters) // a client port and a cluster bus port per node
	nodes := make([]*clusterNode, ClusterMasters)
	for i := range nodes {
		nodes[i] = startClusterNode(t, bin, dir, ports[2*i], ports[2*i+1])
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterReadyTimeout)
	defer cancel()
	for _, n := range nodes {
		n.waitPing(t, ctx)
	}
	// Slots: an even share per master; then every node meets the first.
	per := 16384 / ClusterMasters
	for i, n := range nodes {
		lo, hi := i*per, (i+1)*per-1
		if i == len(nodes)-1 {
			hi = 16383
		}
		if err := n.rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d on %s (Redis 7.0 or newer is needed): %v%s", lo, hi, n.addr, err, n.logs())
		}
	}
	for _, n := range nodes[1:] {
		if err := nodes[0].rdb.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.port, n.busPort).Err(); err != nil {
			t.Fatalf("redistest: CLUSTER MEET %s from %s: %v%s", n.addr, nodes[0].addr, err, n.logs())
		}
	}
	for _, n := range nodes {
		n.waitClusterOK(t, ctx)
	}

	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() {
		if err := cc.Close(); err != nil {
			t.Errorf("redistest: closing the cluster client: %v", err)
		}
	})
	// The client must see the three masters before the test writes (its first state
	// could be from a node that had not yet heard of the others).
	for {
		var masters atomic.Int32 // ForEachMaster calls the function concurrently
		cc.ReloadState(ctx)
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			masters.Add(1)
			return m.Ping(ctx).Err()
		})
		if err == nil && masters.Load() == ClusterMasters {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: the cluster client sees %d masters (want %d), last error %v", masters.Load(), ClusterMasters, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cc
}

// clusterNode is one redis-server process of a Cluster.
type clusterNode struct {
	addr          string
	port, busPort int
	cmd           *exec.Cmd
	out           *syncBuffer
	rdb           *redis.Client // to this node only, for the set-up
}

func startClusterNode(t testing.TB, bin, dir string, port, busPort int) *clusterNode {
	t.Helper()
	n := &clusterNode{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port, busPort: busPort, out: &syncBuffer{}}
	n.cmd = exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--cluster-enabled", "yes",
		"--cluster-port", strconv.Itoa(busPort),
		"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
		"--cluster-node-timeout", "5000",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", "",
	)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("redistest: starting redis-server on %s: %v", n.addr, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = n.cmd.Wait()
		close(exited)
	}()
	n.rdb = redis.NewClient(&redis.Options{Addr: n.addr, MaxRetries: -1})
	t.Cleanup(func() {
		_ = n.rdb.Close()
		_ = n.cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("redistest: redis-server %s output:\n%s", n.addr, n.out.String())
		}
	})
	return n
}

// waitPing waits until the node accepts connections.
func (n *clusterNode) waitPing(t testing.TB, ctx context.Context) {
	t.Helper()
	for {
		err := n.rdb.Ping(ctx).Err()
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: redis-server on %s did not answer within %s: %v%s", n.addr, clusterReadyTimeout, err, n.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitClusterOK waits until the node says cluster_state:ok and knows all the masters
// and all the slots.
func (n *clusterNode) waitClusterOK(t testing.TB, ctx context.Context) {
	t.Helper()
	var last string
	for {
		info, err := n.rdb.ClusterInfo(ctx).Result()
		if err == nil {
			last = info
			if strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_slots_assigned:16384") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(ClusterMasters)) &&
				strings.Contains(info, "cluster_size:"+strconv.Itoa(ClusterMasters)) {
				return
			}
		} else {
			last = err.Error()
		}
		if ctx.Err() != nil {
			t.Fatalf("redistest: the cluster is not ok on %s within %s; CLUSTER INFO:\n%s%s", n.addr, clusterReadyTimeout, last, n.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *clusterNode) logs() string {
	return "\nredis-server output:\n" + n.out.String()
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 just now (all held open
// until all are found, so none is returned twice).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// syncBuffer collects a child process's output from two pipes.
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

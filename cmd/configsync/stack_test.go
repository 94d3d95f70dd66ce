package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/configsync/configsync/redistest"
)

// TestParseRedisURL checks every form --redis-url takes: what each turns into, and
// that a bad one is refused with a reason that never contains the password.
func TestParseRedisURL(t *testing.T) {
	const secret = "s3cret"
	type want struct {
		kind       string // single, cluster, sentinel
		addrs      []string
		master     string
		db         int
		user, pass string
		tls        bool
		dial       time.Duration
	}
	ok := []struct {
		url  string
		want want
	}{
		{"redis://127.0.0.1:6379/0", want{kind: "single", addrs: []string{"127.0.0.1:6379"}}},
		{"rediss://:s3cret@cache.example:6380/2", want{kind: "single", addrs: []string{"cache.example:6380"}, db: 2, pass: secret, tls: true}},
		{"redis://app:s3cret@h:6379/1?dial_timeout=3s", want{kind: "single", addrs: []string{"h:6379"}, db: 1, user: "app", pass: secret, dial: 3 * time.Second}},
		{"redis+cluster://:s3cret@h1:7000,h2:7001,[::1]:7002?dial_timeout=3s",
			want{kind: "cluster", addrs: []string{"h1:7000", "h2:7001", "[::1]:7002"}, pass: secret, dial: 3 * time.Second}},
		{"redis+cluster://h1", want{kind: "cluster", addrs: []string{"h1:6379"}}},
		{"rediss+cluster://app:p%40ss@h1:7000,h2:7000/0", want{kind: "cluster", addrs: []string{"h1:7000", "h2:7000"}, user: "app", pass: "p@ss", tls: true}},
		{"REDIS+CLUSTER://h1:7000/", want{kind: "cluster", addrs: []string{"h1:7000"}}},
		{"redis+sentinel://:s3cret@s1:26379,s2/mymaster/3",
			want{kind: "sentinel", addrs: []string{"s1:26379", "s2:26379"}, master: "mymaster", db: 3, pass: secret}},
		{"rediss+sentinel://s1/main?read_timeout=2s", want{kind: "sentinel", addrs: []string{"s1:26379"}, master: "main", tls: true}},
	}
	for _, c := range ok {
		t.Run(c.url, func(t *testing.T) {
			target, err := parseRedisURL(c.url)
			if err != nil {
				t.Fatalf("parseRedisURL: %v", err)
			}
			var got want
			switch {
			case target.single != nil:
				o := target.single
				got = want{kind: "single", addrs: []string{o.Addr}, db: o.DB, user: o.Username, pass: o.Password, tls: o.TLSConfig != nil, dial: o.DialTimeout}
			case target.cluster != nil:
				o := target.cluster
				got = want{kind: "cluster", addrs: o.Addrs, user: o.Username, pass: o.Password, tls: o.TLSConfig != nil, dial: o.DialTimeout}
			case target.failover != nil:
				o := target.failover
				got = want{kind: "sentinel", addrs: o.SentinelAddrs, master: o.MasterName, db: o.DB, user: o.Username, pass: o.Password, tls: o.TLSConfig != nil, dial: o.DialTimeout}
				if o.SentinelPassword != "" || o.SentinelUsername != "" {
					t.Errorf("the Sentinels get credentials %q/%q, want none", o.SentinelUsername, o.SentinelPassword)
				}
				if c.want.kind == "sentinel" && c.url[:len("rediss")] == "rediss" && o.TLSConfig.ServerName != "s1" {
					t.Errorf("TLS server name %q", o.TLSConfig.ServerName)
				}
			default:
				t.Fatal("no options set")
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			// The client is of the URL's kind (made after reading the options:
			// go-redis fills their defaults in place).
			client := target.client()
			defer client.Close()
			wantType := map[string]string{"single": "*redis.Client", "cluster": "*redis.ClusterClient", "sentinel": "*redis.Client"}[c.want.kind]
			if typ := fmt.Sprintf("%T", client); typ != wantType {
				t.Errorf("client is a %s, want %s", typ, wantType)
			}
			if d := target.describe(); strings.Contains(d, secret) || strings.Contains(d, "p@ss") {
				t.Errorf("describe() = %q shows the password", d)
			}
		})
	}

	bad := []struct{ url, says string }{
		{"127.0.0.1:6379", "does not start with a scheme"},
		{"http://:s3cret@h:6379", `scheme "http" is not`},
		{"redis+foo://:s3cret@h", `"foo" is neither +cluster nor +sentinel`},
		{"unix+cluster://:s3cret@h", `scheme "unix+cluster" is not`},
		{"redis+cluster://:s3cret@h1:7000/1", "only database 0"},
		{"redis+cluster://:s3cret@h1:7000,,h2:7000", "host 2 of the cluster host list is empty"},
		{"redis+cluster://:s3cret@h1:notaport", `cluster host "h1:notaport" has no valid port`},
		{"redis+cluster://:s3cret@h1:7000?addr=h2:7000", `option "addr" is not taken in the query`},
		{"redis+sentinel://:s3cret@s1:26379", "path is /master or /master/db"},
		{"redis+sentinel://:s3cret@s1/m/x", `database "x" of the Sentinel URL is not a number`},
		{"redis+sentinel://:s3cret@s1/m/0/extra", "path is /master or /master/db"},
		{"redis+sentinel://s1/m?master_name=other", `option "master_name" is not taken`},
		{"redis://h:6379?password=s3cret", `option "password" is not taken in the query`},
		{"redis+sentinel://s1/m?sentinel_password=s3cret", `option "sentinel_password" is not taken`},
		{"redis://:s3cret@h:6379?dial_timeout=bogus", "dial_timeout"},
		{"redis+cluster://:s3cret@h:6379?frobnicate=1", "unexpected option: frobnicate"},
		{"redis+sentinel://:s3cret@s1/m?frobnicate=1", "unexpected option: frobnicate"},
		// An unencoded / in the password ends the host part early: the rest of the
		// password must not come back as a "host" or "port" in the error.
		{"redis://:s3/cret@h:6379/0", "percent-encoded"},
		{"redis+cluster://:s3/cret@h:7000", "percent-encoded"},
		{"redis+sentinel://:s3cret#x@s1/m", "percent-encoded"},
	}
	for _, c := range bad {
		t.Run(c.url, func(t *testing.T) {
			_, err := parseRedisURL(c.url)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "parsing the Redis") || !strings.Contains(msg, c.says) {
				t.Errorf("error %q, want it to start with %q and say %q", msg, "parsing the Redis", c.says)
			}
			for _, s := range []string{secret, "s3", "cret"} {
				if strings.Contains(msg, s) {
					t.Errorf("error %q shows the password (%q)", msg, s)
				}
			}
		})
	}
}

// TestOpenRedisCluster connects through a redis+cluster:// URL to a real three-master
// cluster and writes keys of several slots; an unreachable one is reported without
// its password.
func TestOpenRedisCluster(t *testing.T) {
	ctx := context.Background()
	cc := redistest.Cluster(t)
	addrs := cc.(*redis.ClusterClient).Options().Addrs
	rdb, err := openRedis(ctx, "redis+cluster://"+strings.Join(addrs, ",")+"?dial_timeout=2s")
	if err != nil {
		t.Fatalf("openRedis: %v", err)
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("openRedis gave a %T, want *redis.ClusterClient", rdb)
	}
	slots := map[int64]bool{}
	for _, tenant := range []string{"acme", "globex", "initech", "umbrella"} {
		key := "cs:{" + tenant + "}:probe"
		if err := rdb.Set(ctx, key, tenant, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", key, err)
		}
		if got, err := cc.Get(ctx, key).Result(); err != nil || got != tenant {
			t.Fatalf("GET %s = %q, %v", key, got, err)
		}
		slot, err := cc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		slots[slot] = true
	}
	if len(slots) < 2 {
		t.Errorf("the probe keys all hashed to one slot: %v", slots)
	}

	_, err = openRedis(ctx, "redis+cluster://:s3cret@127.0.0.1:1?dial_timeout=200ms")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "connecting to Redis at cluster nodes 127.0.0.1:1") {
		t.Errorf("unreachable cluster: %v", err)
	}
}

func TestNATSReplicasFlag(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
		ok   bool
	}{{"1", 1, true}, {" 3 ", 3, true}, {"5", 5, true}, {"0", 0, false}, {"6", 0, false}, {"three", 0, false}, {"", 0, false}} {
		c := connFlags{replicas: tt.in}
		n, err := c.natsReplicas()
		if (err == nil) != tt.ok || n != tt.want {
			t.Errorf("natsReplicas(%q) = %d, %v; want %d (ok %v)", tt.in, n, err, tt.want, tt.ok)
		}
	}
}

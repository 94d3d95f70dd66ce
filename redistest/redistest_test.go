package redistest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestCleanupDeletesOnlyThePrefix(t *testing.T) {
	ctx := context.Background()
	outer, outerPrefix := Client(t)
	keep := outerPrefix + ":{t}:keep"
	if err := outer.Set(ctx, keep, "1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	var inner string
	var innerKeys []string
	t.Run("inner", func(t *testing.T) {
		rdb, prefix := Client(t)
		if !strings.HasPrefix(prefix, "cstest-") || prefix == outerPrefix {
			t.Fatalf("prefix %q: want a fresh cstest- prefix", prefix)
		}
		inner = prefix
		for i, k := range []string{":{t}:a", ":{t}:e:bp\x1fid with spaces", ":{other}:z*[x]"} {
			key := prefix + k
			innerKeys = append(innerKeys, key)
			if err := rdb.Set(ctx, key, i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := rdb.ZAdd(ctx, "x:"+prefix+":mid", redis.Z{Score: 1, Member: "m"}).Err(); err != nil { // prefix not at the start
			t.Fatal(err)
		}
		innerKeys = append(innerKeys, "x:"+prefix+":mid")
	})
	if inner == "" {
		t.Fatal("inner test did not run")
	}
	n, err := outer.Exists(ctx, innerKeys...).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d of the inner test's keys survived its cleanup", n)
	}
	if v, err := outer.Get(ctx, keep).Result(); err != nil || v != "1" {
		t.Errorf("another test's key was touched: %q, %v", v, err)
	}
}

// TestUnreachable runs this test binary again against a closed port: Client must fail
// the test with a message that says what to do.
func TestUnreachable(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") == "1" {
		Client(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnreachable$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REDISTEST_CHILD=1", EnvURL+"=redis://:hunter2@127.0.0.1:1/0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child passed; want it to fail:\n%s", out)
	}
	for _, want := range []string{"unreachable", "scripts/services", EnvURL} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "hunter2") {
		t.Errorf("output shows the password:\n%s", out)
	}
}

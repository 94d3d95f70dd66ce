package benchmark

import (
	"context"
	"os"
	"testing"

	"github.com/configsync/configsync/redistest"
)

func TestRunCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end benchmark run")
	}
	const cfg = "../../shared/compat/ocean-integrations/github/port-app-config.yml"
	if _, err := os.Stat(cfg); err != nil {
		t.Skipf("compat corpus not found: %v", err)
	}
	url := os.Getenv(redistest.EnvURL)
	if url == "" {
		url = redistest.DefaultURL
	}
	const n = 2000
	res, err := Run(context.Background(), Options{Items: n, RedisURL: url, ConfigPath: cfg, LatencySamples: 3, Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Phases) != 3 {
		t.Fatalf("phases: %d", len(res.Phases))
	}
	want := []struct{ fetched, upserted, deleted int }{{n, n, 0}, {n, 0, 0}, {n - n/100, n / 100, n / 100}}
	for i, p := range res.Phases {
		c := p.Counts
		if c.Fetched != want[i].fetched || c.Upserted != want[i].upserted || c.Deleted != want[i].deleted {
			t.Errorf("%s: fetched %d upserted %d deleted %d, want %+v", p.Name, c.Fetched, c.Upserted, c.Deleted, want[i])
		}
		if p.RedisCommands <= 0 || p.PeakRSS <= 0 {
			t.Errorf("%s: redis commands %d, peak RSS %d", p.Name, p.RedisCommands, p.PeakRSS)
		}
	}
	if len(res.Latencies) != 3 || res.MedianLatency() <= 0 {
		t.Errorf("latencies %v", res.Latencies)
	}
}

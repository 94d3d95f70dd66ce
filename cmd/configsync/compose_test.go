package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeFile keeps docker-compose.yml in step with the binary: no Docker engine
// runs here, so the file is checked by parsing it. NATS keeps JetStream in a volume,
// Redis appends to a file in a volume, two workers run a command this binary has,
// with flags it accepts and the variables it reads.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Deploy      struct {
				Replicas int `yaml:"replicas"`
			} `yaml:"deploy"`
			Healthcheck map[string]any `yaml:"healthcheck"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	nats, redis, worker := c.Services["nats"], c.Services["redis"], c.Services["worker"]
	if !slices.Contains(nats.Command, "-js") || len(nats.Volumes) == 0 || nats.Healthcheck == nil {
		t.Errorf("nats: JetStream, a volume and a health check are needed: %+v", nats)
	}
	if !slices.Contains(redis.Command, "--appendonly") || len(redis.Volumes) == 0 || redis.Healthcheck == nil {
		t.Errorf("redis: AOF, a volume and a health check are needed: %+v", redis)
	}
	if worker.Deploy.Replicas != 2 || len(worker.Command) == 0 || worker.Command[0] != "worker" {
		t.Fatalf("worker: two replicas of `configsync worker`: %+v", worker)
	}
	// Every flag the file passes must exist on the worker command.
	fs, _ := workerFlags(&environment{stderr: &strings.Builder{}})
	for _, arg := range worker.Command[1:] {
		if name, ok := strings.CutPrefix(arg, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if fs.Lookup(name) == nil {
				t.Errorf("worker flag --%s in docker-compose.yml does not exist", name)
			}
		}
	}
	for _, v := range []string{"CONFIGSYNC_NATS_URL", "CONFIGSYNC_REDIS_URL", "CONFIGSYNC_ENCRYPTION_KEY"} {
		if worker.Environment[v] == "" {
			t.Errorf("worker: %s is not set", v)
		}
	}
	for name, cmd := range map[string]string{"api": "api", "scheduler": "scheduler"} {
		svc, ok := c.Services[name]
		if !ok || len(svc.Command) == 0 || svc.Command[0] != cmd {
			t.Errorf("service %s must run `configsync %s`: %+v", name, cmd, svc)
		}
		for _, known := range commands() {
			if known.name == cmd {
				cmd = ""
			}
		}
		if cmd != "" {
			t.Errorf("configsync has no command %q", cmd)
		}
	}
	if c.Services["api"].Environment["CONFIGSYNC_JWT_SECRET"] == "" {
		t.Error("api: CONFIGSYNC_JWT_SECRET is not set")
	}
	for _, vol := range []string{"nats-data", "redis-data"} {
		if _, ok := c.Volumes[vol]; !ok {
			t.Errorf("volume %s not declared", vol)
		}
	}
}

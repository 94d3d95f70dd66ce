package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestServiceSettingsFromEnvironment: the worker's durations and health address come
// from CONFIGSYNC_* variables when no flag is given, a flag wins over its variable,
// and a variable that is not a duration is a usage error naming it.
func TestServiceSettingsFromEnvironment(t *testing.T) {
	env := &environment{stdout: io.Discard, stderr: io.Discard, environ: []string{
		"CONFIGSYNC_ACK_WAIT=10s", "CONFIGSYNC_LEASE_TTL=20s", "CONFIGSYNC_ITEM_TIMEOUT=250ms", "CONFIGSYNC_HEALTH_ADDR=:9191",
	}}
	fs, ws := workerFlags(env)
	if err := parseFlags(fs, []string{"--lease-ttl", "25s"}); err != nil {
		t.Fatal(err)
	}
	for _, check := range ws.envChecks {
		if err := check(); err != nil {
			t.Fatal(err)
		}
	}
	if ws.ackWait != 10*time.Second || ws.leaseTTL != 25*time.Second || ws.itemTimeout != 250*time.Millisecond || ws.healthAddr != ":9191" {
		t.Errorf("settings %v %v %v %q; want 10s, 25s (the flag), 250ms, :9191", ws.ackWait, ws.leaseTTL, ws.itemTimeout, ws.healthAddr)
	}

	bad := &environment{stdout: io.Discard, stderr: io.Discard, environ: []string{"CONFIGSYNC_SCHEDULER_TICK=often"}}
	err := runScheduler(t.Context(), bad, nil)
	var ue *usageError
	if !errors.As(err, &ue) || !strings.Contains(ue.Error(), "CONFIGSYNC_SCHEDULER_TICK") {
		t.Errorf("scheduler with a bad tick variable: %v, want a usage error naming it", err)
	}
}

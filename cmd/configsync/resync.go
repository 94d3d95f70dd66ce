package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/configsync/configsync/run"
)

// runResync requests a resync over the API; with --wait it shows the run's progress
// (kinds, items, entities) until it ends, and exits non-zero when it did not succeed.
func runResync(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("resync", env.stderr)
	var cf clientFlags
	cf.register(fs, env)
	integ := fs.String("integration", "", "integration id (required)")
	wait := fs.Bool("wait", false, "follow the run until it ends")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *integ == "" {
		return &usageError{"--integration is required"}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	base := "/v1/tenants/" + url.PathEscape(cf.tenant) + "/integrations/" + url.PathEscape(*integ)
	var queued struct {
		RunID  string `json:"runId"`
		Status string `json:"status"`
	}
	if _, err := c.do(ctx, http.MethodPost, base+"/resync", map[string]any{}, &queued); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "run %s %s\n", queued.RunID, queued.Status)
	if !*wait {
		return nil
	}
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(env.stderr), progressbar.OptionSetDescription("queued"),
		progressbar.OptionSpinnerType(14), progressbar.OptionClearOnFinish())
	for {
		var rec run.Record
		if _, err := c.do(ctx, http.MethodGet, base+"/runs/"+url.PathEscape(queued.RunID), nil, &rec); err != nil {
			return err
		}
		var fetched, written, kinds int
		for _, k := range slices.Sorted(maps.Keys(rec.Counts)) {
			cnt := rec.Counts[k]
			kinds++
			fetched += cnt.Fetched
			written += cnt.Upserted + cnt.Unchanged
		}
		bar.Describe(fmt.Sprintf("%s: %d kinds, %d items fetched, %d entities written", rec.Status, kinds, fetched, written))
		_ = bar.Set(fetched)
		// A run that started after the request covered it: follow that run, since it
		// is the one that did what was asked.
		if covering, ok := strings.CutPrefix(rec.Message, run.CoveredBy); ok && rec.Status == run.Superseded {
			fmt.Fprintf(env.stdout, "run %s was covered by run %s; following it\n", rec.ID, covering)
			queued.RunID = covering
			continue
		}
		if rec.Status.Done() {
			_ = bar.Finish()
			fmt.Fprintf(env.stdout, "run %s %s", rec.ID, rec.Status)
			if rec.Message != "" {
				fmt.Fprintf(env.stdout, ": %s", rec.Message)
			}
			fmt.Fprintln(env.stdout)
			for _, k := range slices.Sorted(maps.Keys(rec.Counts)) {
				cnt := rec.Counts[k]
				fmt.Fprintf(env.stdout, "  %-12s fetched %d, selected %d, upserted %d, unchanged %d, failed %d, deleted %d, kept for dependents %d\n",
					k, cnt.Fetched, cnt.Selected, cnt.Upserted, cnt.Unchanged, cnt.Failed, cnt.Deleted, cnt.KeptForDependents)
			}
			for _, e := range rec.Errors {
				fmt.Fprintf(env.stdout, "  ! %s\n", e)
			}
			if rec.Status != run.Succeeded {
				return exitCode(1)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

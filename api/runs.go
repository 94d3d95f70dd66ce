package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/run"
)

// maxReason is the most bytes of a resync's reason (the event's own bound).
const maxReason = 1024

// resync creates a run record with status queued and publishes resync.requested
// carrying its id; 202 with the run id.
func (s *server) resync(w http.ResponseWriter, r *http.Request, c *call) error {
	in, err := s.integration(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	m, _, err := s.object(w, r, true, "reason")
	if err != nil {
		return err
	}
	reason := "requested over the API"
	if raw := m["reason"]; !isNull(raw) {
		if json.Unmarshal(raw, &reason) != nil || strings.TrimSpace(reason) == "" || len(reason) > maxReason {
			return errValidation("reason is not valid", []FieldError{{Field: "reason", Message: fmt.Sprintf("must be a non-blank string of at most %d bytes", maxReason)}})
		}
	}
	if in.ConfigVersion == 0 {
		return errConflict("integration " + quoteShort(in.ID) + " has no config yet; PATCH its config first")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("making a run id: %w", err)
	}
	rec := &run.Record{
		ID: "run-" + id.String(), Tenant: in.Tenant, Integration: in.ID, Trigger: "api: " + reason,
		ConfigVersion: in.ConfigVersion, Status: run.Queued, Counts: map[string]*run.Counts{}, Errors: []string{},
		QueuedAt: s.now().UTC(),
	}
	if err := s.d.Runs.Put(r.Context(), rec); err != nil {
		return err
	}
	ev, err := queue.NewEnvelope(queue.TypeResyncRequested, in.Tenant, in.ID, queue.ResyncRequested{Reason: reason, RunID: rec.ID})
	if err == nil {
		err = s.d.Queue.Publish(r.Context(), ev)
	}
	if err != nil {
		// The run will not happen: say so in its record rather than leave it queued.
		now := s.now().UTC()
		rec.Status, rec.Message, rec.FinishedAt = run.Failed, "the resync could not be queued", &now
		if perr := s.d.Runs.Put(context.WithoutCancel(r.Context()), rec); perr != nil {
			err = errors.Join(err, perr)
		}
		return errUnavailable("the resync could not be queued; retry", err)
	}
	w.Header().Set("Location", "/v1/tenants/"+in.Tenant+"/integrations/"+in.ID+"/runs/"+rec.ID)
	return writeJSON(w, http.StatusAccepted, map[string]any{"runId": rec.ID, "status": rec.Status, "eventId": ev.ID})
}

// listRuns pages an integration's runs, newest first.
func (s *server) listRuns(w http.ResponseWriter, r *http.Request, c *call) error {
	in, err := s.integration(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	p, err := pageParams(r)
	if err != nil {
		return err
	}
	offset := 0
	if p.cursor != "" {
		if offset, err = strconv.Atoi(p.cursor); err != nil || offset < 0 {
			return errBadRequest("cursor is not one this API gave", FieldError{Field: "cursor", Message: "not a cursor this API gave"})
		}
	}
	recs, next, err := s.d.Runs.List(r.Context(), in.Tenant, in.ID, offset, p.limit)
	if err != nil {
		return err
	}
	pos := ""
	if next >= 0 {
		pos = strconv.Itoa(next)
	}
	return list(w, "runs", recs, pos)
}

// runOf reads a run of the integration in the path; a run of another integration is
// not found.
func (s *server) runOf(r *http.Request, c *call) (*run.Record, error) {
	in, err := s.integration(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	id := r.PathValue("runId")
	rec, err := s.d.Runs.Get(r.Context(), in.Tenant, id)
	if errors.Is(err, run.ErrNotFound) || err == nil && rec.Integration != in.ID {
		return nil, errNotFound("run " + quoteShort(id))
	}
	return rec, err
}

func (s *server) getRun(w http.ResponseWriter, r *http.Request, c *call) error {
	rec, err := s.runOf(r, c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rec)
}

// cancelRun asks the worker running the run to stop (it checks between pages); 202.
// A finished run cannot be cancelled (409).
func (s *server) cancelRun(w http.ResponseWriter, r *http.Request, c *call) error {
	rec, err := s.runOf(r, c)
	if err != nil {
		return err
	}
	if rec.Status.Done() {
		return errConflict(fmt.Sprintf("run %s has finished (%s)", rec.ID, rec.Status))
	}
	if err := s.d.Runs.RequestCancel(r.Context(), rec.Tenant, rec.ID); err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, map[string]any{"runId": rec.ID, "cancelRequested": true})
}

package catalog

import (
	"testing"
	"time"
)

// TestDeleteLive: a live delete removes an entity only when the deleting integration
// owns it and no write newer than the delete reached it.
func TestDeleteLive(t *testing.T) {
	tests := []struct {
		name     string
		owner    string
		deleteAt time.Duration // relative to the entity's fetch time
		wantGone bool
	}{
		{"older delete event is refused", "gh", -time.Second, false},
		{"newer delete event deletes", "gh", time.Second, true},
		{"same time deletes", "gh", 0, true},
		{"another integration's entity is left alone", "other", time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t)
			w := e.w("githubOrganization", "acme-org", map[string]any{"name": "Acme"}, nil)
			w.Integration = tt.owner
			e.one(w, Created)
			rep, err := e.cat.DeleteLive(e.ctx, e.tenant, "gh", Ref{Blueprint: "githubOrganization", Identifier: "acme-org"}, w.FetchedAt.Add(tt.deleteAt), false)
			if err != nil {
				t.Fatal(err)
			}
			if got := !e.exists("githubOrganization", "acme-org"); got != tt.wantGone || (len(rep.Deleted) == 1) != tt.wantGone {
				t.Fatalf("gone %v (report %+v), want %v", got, rep.Deleted, tt.wantGone)
			}
		})
	}
}

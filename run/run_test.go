package run

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/configsync/configsync/redistest"
)

func TestRunStoreKeepsNewestHundred(t *testing.T) {
	rdb, prefix := redistest.Client(t)
	ctx := context.Background()
	s := NewStore(rdb, prefix)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range Keep + 5 {
		r := &Record{ID: fmt.Sprintf("r%03d", i), Tenant: "t", Integration: "i", Status: Succeeded, QueuedAt: base.Add(time.Duration(i) * time.Second)}
		r.Kind("repo").Upserted = i
		if err := s.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	recs, next, err := s.List(ctx, "t", "i", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 10 || recs[0].ID != "r104" || recs[9].ID != "r095" || next != 10 {
		t.Fatalf("first page: %d records from %s, next %d", len(recs), recs[0].ID, next)
	}
	all, next, err := s.List(ctx, "t", "i", 0, 1000)
	if err != nil || len(all) != Keep || next != -1 {
		t.Fatalf("kept %d (next %d, %v), want %d", len(all), next, err, Keep)
	}
	if _, err := s.Get(ctx, "t", "r004"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("trimmed record still there: %v", err)
	}
	got, err := s.Get(ctx, "t", "r050")
	if err != nil || got.Counts["repo"].Upserted != 50 {
		t.Fatalf("Get: %+v %v", got, err)
	}
	latest, err := s.Latest(ctx, "t", "i")
	if err != nil || latest.ID != "r104" {
		t.Fatalf("Latest: %v %v", latest, err)
	}
	if ok, _ := s.CancelRequested(ctx, "t", "r104"); ok {
		t.Fatal("cancel requested before asked")
	}
	if err := s.RequestCancel(ctx, "t", "r104"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.CancelRequested(ctx, "t", "r104"); !ok {
		t.Fatal("cancel not recorded")
	}
}

func TestRecordErrorsAreBounded(t *testing.T) {
	r := &Record{}
	for i := range 50 {
		r.AddError(fmt.Sprint(i))
	}
	if len(r.Errors) != MaxErrors {
		t.Fatalf("%d errors kept", len(r.Errors))
	}
}

package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/configsync/configsync/redistest"
	"github.com/configsync/configsync/secrets"
)

func newStore(t *testing.T) (*Store, func(pattern string) []string) {
	t.Helper()
	rdb, prefix := redistest.Client(t)
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.ParseKeyring(key, "")
	if err != nil {
		t.Fatal(err)
	}
	dump := func(pattern string) []string {
		keys, _ := rdb.Keys(context.Background(), prefix+pattern).Result()
		var vals []string
		for _, k := range keys {
			typ, _ := rdb.Type(context.Background(), k).Result()
			switch typ {
			case "string":
				v, _ := rdb.Get(context.Background(), k).Result()
				vals = append(vals, v)
			case "hash":
				m, _ := rdb.HGetAll(context.Background(), k).Result()
				vals = append(vals, fmt.Sprint(m))
			}
		}
		return vals
	}
	return NewStore(rdb, prefix, kr), dump
}

func TestIntegrationLifecycle(t *testing.T) {
	s, dump := newStore(t)
	ctx := context.Background()
	const planted = "s3cr3t-token-value"
	in := &Integration{Tenant: "acme", ID: "gh", DisplayName: "GitHub", Type: "http", Parameters: map[string]any{"baseUrl": "https://api.github.com"}}
	got, err := s.Put(ctx, in, secrets.Credentials{"token": planted})
	if err != nil {
		t.Fatal(err)
	}
	if !got.HasCredentials || got.CreatedAt.IsZero() || got.ConfigVersion != 0 {
		t.Fatalf("created: %+v", got)
	}
	// The secret is nowhere in Redis in clear.
	for _, v := range dump("*") {
		if strings.Contains(v, planted) {
			t.Fatalf("credential stored in clear: %s", v)
		}
	}
	creds, err := s.Credentials(ctx, "acme", "gh")
	if err != nil || creds["token"] != planted {
		t.Fatalf("credentials: %v", err)
	}
	// Config versions count up, and the record reflects the newest.
	for i, doc := range []string{`{"resources":[]}`, `{"resources":[{"kind":"x"}]}`} {
		v, err := s.AddConfig(ctx, "acme", "gh", []byte(doc))
		if err != nil || v != int64(i+1) {
			t.Fatalf("AddConfig: %d %v", v, err)
		}
	}
	if doc, err := s.Config(ctx, "acme", "gh", 1); err != nil || string(doc) != `{"resources":[]}` {
		t.Fatalf("Config(1): %s %v", doc, err)
	}
	if _, err := s.Config(ctx, "acme", "gh", 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Config(3): %v", err)
	}
	// An update without credentials keeps them and the config version.
	upd := &Integration{Tenant: "acme", ID: "gh", DisplayName: "GitHub org", Type: "http", Parameters: map[string]any{}}
	if _, err := s.Put(ctx, upd, nil); err != nil {
		t.Fatal(err)
	}
	got, err = s.Get(ctx, "acme", "gh")
	if err != nil || got.DisplayName != "GitHub org" || got.ConfigVersion != 2 || !got.HasCredentials {
		t.Fatalf("after update: %+v %v", got, err)
	}
	if creds, _ := s.Credentials(ctx, "acme", "gh"); creds["token"] != planted {
		t.Fatal("credentials lost on update without credentials")
	}
	// Empty credentials remove them.
	if _, err := s.Put(ctx, upd, secrets.Credentials{}); err != nil {
		t.Fatal(err)
	}
	if creds, _ := s.Credentials(ctx, "acme", "gh"); creds != nil {
		t.Fatalf("credentials not removed: %v", creds)
	}
	if err := s.Delete(ctx, "acme", "gh"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "acme", "gh"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := s.AddConfig(ctx, "acme", "gh", []byte("{}")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AddConfig on deleted: %v", err)
	}
}

func TestIntegrationListAndIDs(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, id := range []string{"c", "a", "b", "d"} {
		if _, err := s.Put(ctx, &Integration{Tenant: "t", ID: id, Type: "file"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := s.List(ctx, "t", "", 3)
	if err != nil || len(page) != 3 || page[0].ID != "a" || next != "c" {
		t.Fatalf("page 1: %d %q %v", len(page), next, err)
	}
	page, next, err = s.List(ctx, "t", next, 3)
	if err != nil || len(page) != 1 || page[0].ID != "d" || next != "" {
		t.Fatalf("page 2: %d %q %v", len(page), next, err)
	}
	for _, bad := range []string{"", "UPPER", "-x", "a.b", strings.Repeat("a", 64)} {
		if _, err := s.Put(ctx, &Integration{Tenant: "t", ID: bad}, nil); err == nil {
			t.Errorf("id %q accepted", bad)
		}
	}
}

func TestCredentialsBoundToTheirIntegration(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, id := range []string{"one", "two"} {
		if _, err := s.Put(ctx, &Integration{Tenant: "t", ID: id, Type: "http"}, secrets.Credentials{"token": id}); err != nil {
			t.Fatal(err)
		}
	}
	// Copying one integration's ciphertext onto another's key does not decrypt.
	sealed, _ := s.rdb.Get(ctx, s.credsKey("t", "one")).Result()
	s.rdb.Set(ctx, s.credsKey("t", "two"), sealed, 0)
	if _, err := s.Credentials(ctx, "t", "two"); err == nil {
		t.Fatal("a ciphertext moved to another integration decrypted")
	}
}

func TestAddConfigOnceIsIdempotentPerEvent(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, &Integration{Tenant: "t", ID: "i", Type: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	v1, err := s.AddConfigOnce(ctx, "t", "i", "event-1", []byte(`{"resources": []}`))
	if err != nil || v1 != 1 {
		t.Fatalf("first: %d %v", v1, err)
	}
	// The same event again (a redelivery): the same version, nothing stored twice.
	again, err := s.AddConfigOnce(ctx, "t", "i", "event-1", []byte(`{"resources": []}`))
	if err != nil || again != 1 {
		t.Fatalf("redelivered: %d %v", again, err)
	}
	v2, err := s.AddConfigOnce(ctx, "t", "i", "event-2", []byte(`{"resources": [{}]}`))
	if err != nil || v2 != 2 {
		t.Fatalf("next event: %d %v", v2, err)
	}
	if in, _ := s.Get(ctx, "t", "i"); in.ConfigVersion != 2 {
		t.Fatalf("newest version %d, want 2", in.ConfigVersion)
	}
	if _, err := s.AddConfigOnce(ctx, "t", "gone", "event-3", []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown integration: %v", err)
	}
}

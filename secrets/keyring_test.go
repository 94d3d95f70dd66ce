package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testKey returns a deterministic valid key: 32 bytes of b.
func testKey(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, KeySize))
}

func mustKeyring(t *testing.T, single, list string) *Keyring {
	t.Helper()
	k, err := ParseKeyring(single, list)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	k := mustKeyring(t, testKey(1), "")
	for _, plain := range [][]byte{nil, []byte(""), []byte("token-123"), bytes.Repeat([]byte{0, 0xff}, 5000)} {
		ct, err := k.Encrypt(plain, "acme/github")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ct, "v1."+DefaultKeyID+".") {
			t.Errorf("ciphertext %q: want prefix v1.default.", ct)
		}
		if len(plain) > 0 && strings.Contains(ct, base64.RawURLEncoding.EncodeToString(plain)) {
			t.Errorf("ciphertext contains the plaintext")
		}
		got, err := k.Decrypt(ct, "acme/github")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("round trip: got %d bytes, want %d", len(got), len(plain))
		}
	}
	a, _ := k.Encrypt([]byte("same"), "o")
	b, _ := k.Encrypt([]byte("same"), "o")
	if a == b {
		t.Error("two encryptions of the same plaintext are equal: nonce reused")
	}
}

func TestDecryptFailures(t *testing.T) {
	k := mustKeyring(t, "", "k1:"+testKey(1))
	ct, err := k.Encrypt([]byte("s3cret"), "acme/github")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(strings.TrimPrefix(ct, "v1."), ".")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flip := func(i int) string {
		r := bytes.Clone(raw)
		r[i] ^= 1
		return "v1.k1." + base64.RawURLEncoding.EncodeToString(r)
	}
	other := mustKeyring(t, "", "k1:"+testKey(2)) // same id, different key
	tests := []struct {
		name string
		k    *Keyring
		ct   string
		aad  string
		want error
	}{
		{"wrong aad", k, ct, "acme/jira", ErrAuthentication},
		{"empty aad", k, ct, "", ErrAuthentication},
		{"aad prefix", k, ct, "acme/githu", ErrAuthentication},
		{"tampered nonce", k, flip(0), "acme/github", ErrAuthentication},
		{"tampered body", k, flip(12), "acme/github", ErrAuthentication},
		{"tampered tag", k, flip(len(raw) - 1), "acme/github", ErrAuthentication},
		{"truncated", k, ct[:len(ct)-4], "acme/github", ErrAuthentication},
		{"different key same id", other, ct, "acme/github", ErrAuthentication},
		{"key id rewritten", mustKeyring(t, "", "k2:"+testKey(1)), strings.Replace(ct, "v1.k1.", "v1.k2.", 1), "acme/github", ErrAuthentication},
		{"unknown key id", mustKeyring(t, "", "k9:"+testKey(1)), ct, "acme/github", ErrUnknownKey},
		{"empty", k, "", "acme/github", ErrMalformed},
		{"plaintext", k, "s3cret", "acme/github", ErrMalformed},
		{"version", k, "v2" + ct[2:], "acme/github", ErrMalformed},
		{"no body", k, "v1.k1", "acme/github", ErrMalformed},
		{"bad key id", k, "v1.k 1." + body, "acme/github", ErrMalformed},
		{"bad base64", k, "v1.k1.***", "acme/github", ErrMalformed},
		{"too short", k, "v1.k1.AAAA", "acme/github", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.k.Decrypt(tt.ct, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decrypt: got %v, want %v", err, tt.want)
			}
			if got != nil {
				t.Errorf("Decrypt returned data with an error")
			}
			if strings.Contains(err.Error(), "s3cret") || (len(body) > 8 && strings.Contains(err.Error(), body[:8])) {
				t.Errorf("error %q echoes plaintext or ciphertext", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	old := mustKeyring(t, testKey(1), "")
	ctOld, err := old.Encrypt([]byte("token"), "t/i")
	if err != nil {
		t.Fatal(err)
	}
	if old.NeedsRotation(ctOld) {
		t.Error("NeedsRotation true under the only key")
	}
	// The operator adds a new primary key and keeps the old one under its id.
	rotated := mustKeyring(t, "", " new:"+testKey(2)+" , default:"+testKey(1)+",")
	if got := rotated.PrimaryKeyID(); got != "new" {
		t.Errorf("primary %q, want new", got)
	}
	if got := fmt.Sprint(rotated.KeyIDs()); got != "[new default]" {
		t.Errorf("key ids %s", got)
	}
	plain, err := rotated.Decrypt(ctOld, "t/i")
	if err != nil || string(plain) != "token" {
		t.Fatalf("old key no longer decrypts: %q %v", plain, err)
	}
	if !rotated.NeedsRotation(ctOld) {
		t.Error("NeedsRotation false for a ciphertext under the old key")
	}
	ctNew, err := rotated.Encrypt(plain, "t/i")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ctNew, "v1.new.") {
		t.Errorf("new ciphertext %q not under the primary key", ctNew)
	}
	if rotated.NeedsRotation(ctNew) {
		t.Error("NeedsRotation true under the primary key")
	}
	for _, bad := range []string{"", "garbage", "v2.new.AAAA", "v1.gone.AAAA"} {
		if !rotated.NeedsRotation(bad) {
			t.Errorf("NeedsRotation(%q) = false, want true", bad)
		}
	}
	// Once the old key is removed, old ciphertexts fail clearly.
	final := mustKeyring(t, "", "new:"+testKey(2))
	if _, err := final.Decrypt(ctOld, "t/i"); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"default"`) {
		t.Errorf("after removing the old key: %v", err)
	}
	if got, err := final.Decrypt(ctNew, "t/i"); err != nil || string(got) != "token" {
		t.Errorf("new ciphertext: %q %v", got, err)
	}
}

func TestParseKeyring(t *testing.T) {
	valid := testKey(7)
	short := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")) // 16 bytes
	secretish := "THISISNOTBASE64!!" + strings.Repeat("x", 30)
	tests := []struct {
		name, single, list string
		wantErr            string // "" for success
	}{
		{"single std", valid, "", ""},
		{"single raw std", strings.TrimRight(valid, "="), "", ""},
		{"single url", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), "", ""},
		{"single whitespace", "  " + valid + "\n", "", ""},
		{"list", "", "a:" + valid + ",b-2_X:" + testKey(8), ""},
		{"neither", "", "", "no encryption key"},
		{"blank", " ", "\t", "no encryption key"},
		{"both", valid, "a:" + valid, "both"},
		{"single not base64", secretish, "", "not valid base64"},
		{"single too short", short, "", "decodes to 16 bytes, want 32"},
		{"list not base64", "", "a:" + secretish, `entry 1 (key id "a"): key is not valid base64`},
		{"list short", "", "a:" + valid + ",b:" + short, `entry 2 (key id "b"): key decodes to 16 bytes`},
		{"list missing id", "", secretish, "entry 1: want id:key"},
		{"list empty id", "", ":" + valid, "entry 1: empty key id"},
		{"list bad id", "", "a.b:" + valid, "entry 1: key id may hold only"},
		{"list long id", "", strings.Repeat("i", 65) + ":" + valid, "longer than 64"},
		{"list duplicate id", "", "a:" + valid + ",a:" + testKey(8), `key id "a" appears twice`},
		{"list empty key", "", "a:", "empty key"},
		{"list only commas", "", ",,", "holds no key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyring(tt.single, tt.list)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				ct, err := k.Encrypt([]byte("x"), "o")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := k.Decrypt(ct, "o"); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			for _, material := range []string{valid, strings.TrimRight(valid, "="), short, secretish} {
				if strings.Contains(err.Error(), material) {
					t.Errorf("error %q echoes key material", err)
				}
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey()
	if a == b {
		t.Error("two generated keys are equal")
	}
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil || len(raw) != KeySize {
		t.Fatalf("generated key %d bytes, %v", len(raw), err)
	}
	if _, err := ParseKeyring(a, ""); err != nil {
		t.Fatalf("generated key does not parse: %v", err)
	}
}

func TestKeyringPrintsNoKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, KeySize)
	k := mustKeyring(t, "", "primary:"+base64.StdEncoding.EncodeToString(key))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q", "%d"} {
		for _, v := range []any{k, *k, struct{ K *Keyring }{k}} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "abab") || strings.Contains(out, "171 171") || strings.Contains(out, base64.StdEncoding.EncodeToString(key)[:8]) {
				t.Errorf("%s printed key material: %s", verb, out)
			}
		}
	}
	if got := k.String(); got != "secrets.Keyring{primary: primary, keys: primary}" {
		t.Errorf("String() = %q", got)
	}
}

func TestCredentialsSealOpen(t *testing.T) {
	k := mustKeyring(t, testKey(3), "")
	c := Credentials{"token": "ghp_secret", "user": "bot"}
	ct, err := k.SealCredentials(c, "acme/github")
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.OpenCredentials(ct, "acme/github")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["token"] != "ghp_secret" || got["user"] != "bot" {
		t.Errorf("OpenCredentials: %d entries", len(got))
	}
	if _, err := k.OpenCredentials(ct, "other/github"); !errors.Is(err, ErrAuthentication) {
		t.Errorf("wrong owner: %v", err)
	}
	notJSON, _ := k.Encrypt([]byte(`"ghp_secret"`), "o")
	if _, err := k.OpenCredentials(notJSON, "o"); !errors.Is(err, ErrMalformed) || strings.Contains(err.Error(), "ghp_secret") {
		t.Errorf("non-object plaintext: %v", err)
	}
}

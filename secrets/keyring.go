// Package secrets keeps credentials encrypted at rest and out of every log line,
// error and response.
//
// A Keyring encrypts with AES-256-GCM. Its keys come from the deployment's
// configuration: CONFIGSYNC_ENCRYPTION_KEY (the base64 of 32 bytes) for one key,
// or CONFIGSYNC_ENCRYPTION_KEYS ("id:key,id:key,...") to rotate keys, where the
// first key encrypts and every key decrypts. The package reads no environment
// itself: callers pass the two strings to ParseKeyring.
//
// Ciphertexts are strings of the form "v1.<keyid>.<base64url(nonce|sealed)>".
// Each is bound to an owner string (the "aad", for example "tenant/integration"):
// a ciphertext copied onto another record does not decrypt there.
//
// Credentials is a map of secret values whose every printed or encoded form
// (fmt verbs, JSON, YAML, zap, slog) shows the keys and hides the values.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// KeySize is the length in bytes of an encryption key (AES-256).
const KeySize = 32

// DefaultKeyID is the key id of the single key given as CONFIGSYNC_ENCRYPTION_KEY.
// To start rotating away from it, list it under this id in
// CONFIGSYNC_ENCRYPTION_KEYS after the new key: "new:<new key>,default:<old key>".
const DefaultKeyID = "default"

// version is the prefix of the ciphertext format this package writes.
const version = "v1"

// maxKeyIDLen bounds a key id, which is stored in every ciphertext.
const maxKeyIDLen = 64

// Errors returned by Decrypt, for errors.Is. Their messages never contain key
// material, plaintext or the ciphertext.
var (
	// ErrMalformed means the string is not a ciphertext of a format this package
	// reads.
	ErrMalformed = errors.New("malformed ciphertext")
	// ErrUnknownKey means the ciphertext names a key id that the keyring does not
	// hold (a key removed too early from CONFIGSYNC_ENCRYPTION_KEYS).
	ErrUnknownKey = errors.New("ciphertext encrypted under a key the keyring does not hold")
	// ErrAuthentication means the ciphertext did not authenticate: it was altered,
	// belongs to another owner (aad), or was made with a different key under the
	// same id.
	ErrAuthentication = errors.New("ciphertext failed authentication (altered, another owner's, or a different key under the same id)")
)

// Keyring holds the keys that encrypt and decrypt secrets. The first key (the
// primary) encrypts; every key decrypts. Make one with ParseKeyring: the zero
// Keyring holds no key and cannot encrypt. A Keyring is immutable and safe for
// concurrent use. Its printed forms show key ids only.
type Keyring struct {
	primary string
	ids     []string // in the order given, primary first
	aeads   map[string]cipher.AEAD
}

// ParseKeyring builds a Keyring from the values of CONFIGSYNC_ENCRYPTION_KEY
// (single: the base64 of 32 bytes, whose key id is DefaultKeyID) and
// CONFIGSYNC_ENCRYPTION_KEYS (list: comma-separated "id:key" entries; the first
// encrypts). Exactly one of the two must be non-empty. Key ids are 1 to 64
// characters of [A-Za-z0-9_-] and must be unique. Keys may use standard or URL
// base64, padded or not. Errors name the variable, the entry position and the key
// id, never the key.
func ParseKeyring(single, list string) (*Keyring, error) {
	single, list = strings.TrimSpace(single), strings.TrimSpace(list)
	switch {
	case single == "" && list == "":
		return nil, errors.New("no encryption key: set CONFIGSYNC_ENCRYPTION_KEY (the base64 of 32 random bytes) or CONFIGSYNC_ENCRYPTION_KEYS (id:key,...)")
	case single != "" && list != "":
		return nil, errors.New("both CONFIGSYNC_ENCRYPTION_KEY and CONFIGSYNC_ENCRYPTION_KEYS are set: set only one")
	}
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	if single != "" {
		if err := k.add(DefaultKeyID, single); err != nil {
			return nil, fmt.Errorf("CONFIGSYNC_ENCRYPTION_KEY: %w", err)
		}
		return k, nil
	}
	n := 0
	for entry := range strings.SplitSeq(list, ",") {
		n++
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue // tolerate a trailing or doubled comma
		}
		id, key, ok := strings.Cut(entry, ":")
		if !ok {
			// The entry may be a bare key: do not echo it.
			return nil, fmt.Errorf("CONFIGSYNC_ENCRYPTION_KEYS entry %d: want id:key", n)
		}
		id = strings.TrimSpace(id)
		if err := validKeyID(id); err != nil {
			return nil, fmt.Errorf("CONFIGSYNC_ENCRYPTION_KEYS entry %d: %w", n, err)
		}
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("CONFIGSYNC_ENCRYPTION_KEYS entry %d: key id %q appears twice", n, id)
		}
		if err := k.add(id, strings.TrimSpace(key)); err != nil {
			return nil, fmt.Errorf("CONFIGSYNC_ENCRYPTION_KEYS entry %d (key id %q): %w", n, id, err)
		}
	}
	if len(k.ids) == 0 {
		return nil, errors.New("CONFIGSYNC_ENCRYPTION_KEYS holds no key: want id:key[,id:key]")
	}
	return k, nil
}

// validKeyID checks that id can be written into a ciphertext and read back.
func validKeyID(id string) error {
	if id == "" {
		return errors.New("empty key id")
	}
	if len(id) > maxKeyIDLen {
		return fmt.Errorf("key id longer than %d characters", maxKeyIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return errors.New("key id may hold only letters, digits, '_' and '-'")
		}
	}
	return nil
}

// add decodes a base64 key and adds it under id.
func (k *Keyring) add(id, encoded string) error {
	raw, err := decodeKey(encoded)
	if err != nil {
		return err
	}
	defer clear(raw)
	block, err := aes.NewCipher(raw)
	if err != nil {
		return fmt.Errorf("creating the cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("creating the cipher: %w", err)
	}
	if k.primary == "" {
		k.primary = id
	}
	k.ids = append(k.ids, id)
	k.aeads[id] = aead
	return nil
}

// decodeKey decodes a key in any of the four common base64 alphabets and
// paddings. Its errors never contain the input.
func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty key")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		raw, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(raw) != KeySize {
			clear(raw)
			return nil, fmt.Errorf("key decodes to %d bytes, want %d (generate one with: openssl rand -base64 32)", len(raw), KeySize)
		}
		return raw, nil
	}
	return nil, errors.New("key is not valid base64 (generate one with: openssl rand -base64 32)")
}

// GenerateKey returns a new random key, encoded as CONFIGSYNC_ENCRYPTION_KEY
// expects it: standard base64 of 32 bytes from crypto/rand.
func GenerateKey() (string, error) {
	raw := make([]byte, KeySize)
	defer clear(raw)
	if _, err := io.ReadFull(rand.Reader, raw); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// PrimaryKeyID returns the id of the key that encrypts.
func (k *Keyring) PrimaryKeyID() string { return k.primary }

// KeyIDs returns the ids of every key, the primary first.
func (k *Keyring) KeyIDs() []string { return slices.Clone(k.ids) }

// Encrypt encrypts plaintext under the primary key, bound to aad: the result
// decrypts only with the same aad. aad names the owner of the secret (for example
// "tenant/integration"); it is authenticated, not encrypted, and not stored in
// the ciphertext. The result is "v1.<keyid>.<base64url(nonce|sealed)>".
func (k *Keyring) Encrypt(plaintext []byte, aad string) (string, error) {
	if k == nil || k.primary == "" {
		return "", errors.New("encrypting: the keyring holds no key (make it with ParseKeyring)")
	}
	aead := k.aeads[k.primary]
	buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, buf); err != nil {
		return "", fmt.Errorf("encrypting: reading a nonce: %w", err)
	}
	buf = aead.Seal(buf, buf, plaintext, additionalData(k.primary, aad))
	return version + "." + k.primary + "." + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Decrypt returns the plaintext of a ciphertext made by Encrypt with the same
// aad, under any key of the keyring. Errors wrap ErrMalformed, ErrUnknownKey or
// ErrAuthentication, and contain neither the ciphertext nor the aad.
func (k *Keyring) Decrypt(ciphertext, aad string) ([]byte, error) {
	id, sealed, err := parse(ciphertext)
	if err != nil {
		return nil, err
	}
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("decrypting: key id %q: %w", id, ErrUnknownKey)
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("decrypting: too short: %w", ErrMalformed)
	}
	nonce, body := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	plain, err := aead.Open(nil, nonce, body, additionalData(id, aad))
	if err != nil {
		// crypto/cipher's error says nothing more than ErrAuthentication does.
		return nil, fmt.Errorf("decrypting under key id %q: %w", id, ErrAuthentication)
	}
	return plain, nil
}

// NeedsRotation reports whether ciphertext should be re-encrypted: it returns
// false only for a well-formed ciphertext under the primary key. One under an
// older key, an unknown key or in an unreadable format returns true, so that a
// rotation pass visits it (and reports it when Decrypt then fails).
func (k *Keyring) NeedsRotation(ciphertext string) bool {
	id, _, err := parse(ciphertext)
	return err != nil || id != k.primary
}

// Format prints the keyring's key ids, never its keys, for every verb.
func (k *Keyring) Format(f fmt.State, verb rune) {
	if k == nil {
		_, _ = io.WriteString(f, "secrets.Keyring(nil)")
		return
	}
	_, _ = fmt.Fprintf(f, "secrets.Keyring{primary: %s, keys: %s}", k.primary, strings.Join(k.ids, ","))
}

// String returns the keyring's key ids, never its keys.
func (k *Keyring) String() string { return fmt.Sprint(k) }

// GoString returns the keyring's key ids, never its keys.
func (k *Keyring) GoString() string { return fmt.Sprint(k) }

// parse splits a ciphertext into its key id and decoded nonce|sealed bytes.
func parse(ciphertext string) (id string, sealed []byte, err error) {
	ver, rest, ok := strings.Cut(ciphertext, ".")
	if !ok || ver != version {
		return "", nil, fmt.Errorf("decrypting: not a %s ciphertext: %w", version, ErrMalformed)
	}
	id, body, ok := strings.Cut(rest, ".")
	if !ok || validKeyID(id) != nil {
		return "", nil, fmt.Errorf("decrypting: bad key id field: %w", ErrMalformed)
	}
	sealed, err = base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return "", nil, fmt.Errorf("decrypting: body is not base64url: %w", ErrMalformed)
	}
	return id, sealed, nil
}

// additionalData is the GCM additional data: a fixed prefix with the format
// version, the key id and the owner, separated by NUL bytes. Key ids hold no NUL,
// so the encoding is unambiguous for any aad. Binding the key id means the id
// field of a ciphertext cannot be rewritten.
func additionalData(id, aad string) []byte {
	b := make([]byte, 0, len("configsync/secrets/")+len(version)+len(id)+len(aad)+2)
	b = append(b, "configsync/secrets/"...)
	b = append(b, version...)
	b = append(b, 0)
	b = append(b, id...)
	b = append(b, 0)
	return append(b, aad...)
}

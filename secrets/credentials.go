package secrets

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap/zapcore"
)

// Redacted replaces every credential value in printed and encoded forms.
const Redacted = "[redacted]"

// Credentials holds an integration's secret values by name (a token, a password).
// Read a value by indexing the map. Every printed or encoded form shows the names
// and replaces each value with Redacted: fmt with any verb (including %+v and
// %#v, also inside exported struct fields, slices and maps), encoding/json,
// yaml.v3, zap (zap.Any, zap.Object, zap.Reflect, zap.Stringer) and log/slog.
//
// One path cannot be closed by methods: fmt prints an unexported struct field
// without calling its methods, so a struct that keeps Credentials in an
// unexported field must not itself be printed. To store Credentials, encrypt
// them with Keyring.SealCredentials.
type Credentials map[string]string

// names returns the credential names, sorted.
func (c Credentials) names() []string { return slices.Sorted(maps.Keys(c)) }

// String returns the names with redacted values, as fmt prints a map:
// "map[password:[redacted] user:[redacted]]".
func (c Credentials) String() string {
	var b strings.Builder
	b.WriteString("map[")
	for i, k := range c.names() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte(':')
		b.WriteString(Redacted)
	}
	b.WriteByte(']')
	return b.String()
}

// GoString returns Go syntax with redacted values:
// `secrets.Credentials{"password":"[redacted]"}`; "secrets.Credentials(nil)"
// for a nil map.
func (c Credentials) GoString() string {
	if c == nil {
		return "secrets.Credentials(nil)"
	}
	var b strings.Builder
	b.WriteString("secrets.Credentials{")
	for i, k := range c.names() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(k))
		b.WriteByte(':')
		b.WriteString(strconv.Quote(Redacted))
	}
	b.WriteByte('}')
	return b.String()
}

// Format implements fmt.Formatter so that no verb prints a value: %#v prints
// GoString, %q a quoted String, and every other verb String.
func (c Credentials) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = io.WriteString(f, c.GoString())
	case verb == 'q':
		_, _ = io.WriteString(f, strconv.Quote(c.String()))
	default:
		_, _ = io.WriteString(f, c.String())
	}
}

// redactedMap returns the names mapped to Redacted.
func (c Credentials) redactedMap() map[string]string {
	if c == nil {
		return nil
	}
	m := make(map[string]string, len(c))
	for k := range c {
		m[k] = Redacted
	}
	return m
}

// MarshalJSON encodes the names with redacted values: {"password":"[redacted]"};
// null for a nil map. It is for responses and logs: to store Credentials, use
// Keyring.SealCredentials.
func (c Credentials) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(c.redactedMap())
	if err != nil {
		return nil, fmt.Errorf("encoding redacted credentials: %w", err)
	}
	return b, nil
}

// MarshalYAML encodes the names with redacted values (go.yaml.in/yaml/v3).
func (c Credentials) MarshalYAML() (any, error) { return c.redactedMap(), nil }

// MarshalLogObject adds the names with redacted values to a zap log entry.
func (c Credentials) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for _, k := range c.names() {
		enc.AddString(k, Redacted)
	}
	return nil
}

// LogValue returns the names with redacted values as a log/slog group.
func (c Credentials) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(c))
	for _, k := range c.names() {
		attrs = append(attrs, slog.String(k, Redacted))
	}
	return slog.GroupValue(attrs...)
}

// SealCredentials encrypts c under the keyring's primary key, bound to aad (see
// Encrypt). OpenCredentials reverses it.
func (k *Keyring) SealCredentials(c Credentials, aad string) (string, error) {
	plain, err := json.Marshal(map[string]string(c))
	if err != nil {
		return "", fmt.Errorf("encoding credentials: %w", err)
	}
	defer clear(plain)
	return k.Encrypt(plain, aad)
}

// OpenCredentials decrypts credentials sealed by SealCredentials with the same
// aad. Its errors are Decrypt's, or a decoding error that contains no value.
func (k *Keyring) OpenCredentials(ciphertext, aad string) (Credentials, error) {
	plain, err := k.Decrypt(ciphertext, aad)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	// Decode through a plain map: json's errors may quote input, so report none of it.
	var m map[string]string
	if json.Unmarshal(plain, &m) != nil {
		return nil, fmt.Errorf("decoding credentials: decrypted data is not a JSON object of strings: %w", ErrMalformed)
	}
	return Credentials(m), nil
}

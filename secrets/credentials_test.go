package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"
)

// planted is a value that must never appear in any output.
const planted = "pl4nted-S3CRET"

// TestCredentialsNeverPrinted formats Credentials every way a program might by
// accident and checks that the planted value never appears while the names do.
func TestCredentialsNeverPrinted(t *testing.T) {
	c := Credentials{"token": planted, "password": planted + "2"}
	type Exported struct {
		Name  string
		Creds Credentials
		Ptr   *Credentials
	}
	holders := map[string]any{
		"value":         c,
		"pointer":       &c,
		"in struct":     Exported{Name: "gh", Creds: c, Ptr: &c},
		"in struct ptr": &Exported{Creds: c},
		"in slice":      []Credentials{c, c},
		"in map":        map[string]Credentials{"gh": c},
		"in any slice":  []any{1, c},
		"nested map":    map[string]any{"config": map[string]any{"creds": c}},
		"as interface":  any(c),
		"as stringer":   fmt.Stringer(c),
	}

	check := func(t *testing.T, how, out string) {
		t.Helper()
		if strings.Contains(out, planted) {
			t.Errorf("%s leaked the value: %s", how, out)
		}
	}
	checkNames := func(t *testing.T, how, out string) {
		t.Helper()
		check(t, how, out)
		if !strings.Contains(out, "token") || !strings.Contains(out, Redacted) {
			t.Errorf("%s lost the names or the redaction mark: %s", how, out)
		}
	}

	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v", "%10v", "%-20s", "%[1]v"}
	for name, h := range holders {
		for _, verb := range verbs {
			check(t, name+" "+verb, fmt.Sprintf(verb, h))
		}
		check(t, name+" Sprint", fmt.Sprint(h))
		check(t, name+" Sprintln", fmt.Sprintln(h))
		check(t, name+" Errorf %w", fmt.Errorf("wrapping %v: %w", h, errors.New("x")).Error())
		var lb bytes.Buffer
		log.New(&lb, "", 0).Println(h)
		check(t, name+" log", lb.String())

		js, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("%s json: %v", name, err)
		}
		checkNames(t, name+" json", string(js))
		js, _ = json.MarshalIndent(h, "", " ")
		check(t, name+" json indent", string(js))

		ym, err := yaml.Marshal(h)
		if err != nil {
			t.Fatalf("%s yaml: %v", name, err)
		}
		checkNames(t, name+" yaml", string(ym))

		for _, jsonHandler := range []bool{true, false} {
			var sb bytes.Buffer
			var handler slog.Handler = slog.NewTextHandler(&sb, nil)
			if jsonHandler {
				handler = slog.NewJSONHandler(&sb, nil)
			}
			slog.New(handler).Info("msg", "creds", h, slog.Any("any", h))
			checkNames(t, fmt.Sprintf("%s slog json=%v", name, jsonHandler), sb.String())
		}
	}
	for _, verb := range []string{"%v", "%+v", "%s"} {
		checkNames(t, "direct "+verb, fmt.Sprintf(verb, c))
	}

	// zap, through a JSON encoder into a buffer, with every field constructor
	// that can take a map.
	var zb bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	logger := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&zb), zapcore.DebugLevel))
	logger.Info("fields",
		zap.Any("any", c),
		zap.Object("object", c),
		zap.Reflect("reflect", c),
		zap.Stringer("stringer", c),
		zap.Any("struct", Exported{Creds: c}),
		zap.Any("slice", []Credentials{c}),
		zap.Error(fmt.Errorf("failed with %v", c)),
	)
	logger.Sugar().Infow("sugar", "creds", c, "nested", map[string]any{"c": c})
	logger.Sugar().Infof("sugar %v %+v %#v", c, c, c)
	_ = logger.Sync()
	out := zb.String()
	checkNames(t, "zap", out)
	if n := strings.Count(out, `"token":"[redacted]"`); n < 4 {
		t.Errorf("zap: want the redacted object in at least 4 fields, got %d:\n%s", n, out)
	}
}

func TestCredentialsForms(t *testing.T) {
	c := Credentials{"b": planted, "a": planted}
	tests := []struct{ got, want string }{
		{c.String(), "map[a:[redacted] b:[redacted]]"},
		{fmt.Sprintf("%v", c), "map[a:[redacted] b:[redacted]]"},
		{fmt.Sprintf("%#v", c), `secrets.Credentials{"a":"[redacted]", "b":"[redacted]"}`},
		{fmt.Sprintf("%q", c), `"map[a:[redacted] b:[redacted]]"`},
		{fmt.Sprintf("%#v", Credentials(nil)), "secrets.Credentials(nil)"},
		{fmt.Sprintf("%v", Credentials{}), "map[]"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
	js, _ := json.Marshal(c)
	if string(js) != `{"a":"[redacted]","b":"[redacted]"}` {
		t.Errorf("json: %s", js)
	}
	js, _ = json.Marshal(Credentials(nil))
	if string(js) != "null" {
		t.Errorf("json nil: %s", js)
	}
}

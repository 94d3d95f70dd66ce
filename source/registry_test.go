package source_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/configsync/configsync/source"
)

// nopSource is a Source with no items.
type nopSource struct{ params map[string]any }

func (nopSource) Fetch(context.Context, source.Resource, func(source.Page) error) error { return nil }

// testType has a parameter of every type and constraint.
func testType() source.Type {
	return source.Type{
		ID: "test", DisplayName: "Test", Description: "A type for tests.",
		Parameters: []source.Parameter{
			{Name: "url", Type: source.TypeString, Required: true},
			{Name: "token", Type: source.TypeString, Secret: true},
			{Name: "mode", Type: source.TypeString, Options: []string{"fast", "safe"}, Default: "safe"},
			{Name: "pages", Type: source.TypeInteger, IntegerRange: &[2]int64{1, 100}, Default: int64(10)},
			{Name: "ratio", Type: source.TypeNumber, FloatRange: &[2]float64{0, 1}},
			{Name: "verbose", Type: source.TypeBoolean},
			{Name: "headers", Type: source.TypeObject},
			{Name: "scopes", Type: source.TypeArray, Options: []string{"read", "write"}},
		},
		Auth: []source.AuthMethod{{ID: "token", DisplayName: "Token", ConfigTestSupported: true,
			Parameters: []source.Parameter{{Name: "token", Type: source.TypeString, Required: true, Secret: true}}}},
		New: func(params map[string]any, _ map[string]string) (source.Source, error) {
			return nopSource{params}, nil
		},
	}
}

func TestValidateParameters(t *testing.T) {
	reg := source.NewRegistry(testType(), source.FileType([]string{t.TempDir()}))
	tests := []struct {
		name   string
		params map[string]any
		want   []string // "name: message part", in order; nil for valid
	}{
		{"minimal", map[string]any{"url": "http://x"}, nil},
		{"everything", map[string]any{
			"url": "u", "token": "t", "mode": "fast", "pages": int64(100), "ratio": 0.5, "verbose": true,
			"headers": map[string]any{"a": "b"}, "scopes": []any{"read", "write"},
		}, nil},
		{"json numbers", map[string]any{"url": "u", "pages": float64(3), "ratio": json.Number("1")}, nil},
		{"go ints", map[string]any{"url": "u", "pages": 7, "ratio": 0}, nil},
		{"string slice", map[string]any{"url": "u", "scopes": []string{"read"}}, nil},
		{"nil counts as absent", map[string]any{"url": "u", "mode": nil}, nil},
		{"missing required", map[string]any{}, []string{`url: required`}},
		{"required empty", map[string]any{"url": ""}, []string{`url: required, must not be empty`}},
		{"required nil", map[string]any{"url": nil}, []string{`url: required`}},
		{"every problem at once", map[string]any{
			"token": 5, "mode": "slow", "pages": 0, "ratio": 1.5, "verbose": "yes",
			"headers": []any{}, "scopes": []any{"read", "admin"}, "zeta": 1, "alpha": true,
		}, []string{
			`url: required`,
			`token: must be a string, got number`,
			`mode: must be one of: fast, safe`,
			`pages: must be between 1 and 100`,
			`ratio: must be between 0 and 1`,
			`verbose: must be a boolean, got string`,
			`headers: must be an object, got array`,
			`scopes: element 1 must be one of: read, write`,
			`alpha: unknown parameter (known: url, token, mode, pages, ratio, verbose, headers, scopes)`,
			`zeta: unknown parameter`,
		}},
		{"fractional integer", map[string]any{"url": "u", "pages": 2.5}, []string{`pages: must be an integer, got a number with a fraction`}},
		{"integer as string", map[string]any{"url": "u", "pages": "3"}, []string{`pages: must be an integer, got string`}},
		{"huge integer", map[string]any{"url": "u", "pages": 1e300}, []string{`pages: must be an integer`}},
		{"uint beyond int64", map[string]any{"url": "u", "pages": uint64(1 << 63)}, []string{`pages: must be an integer`}},
		{"bad json number", map[string]any{"url": "u", "pages": json.Number("1.5")}, []string{`pages: must be an integer`}},
		{"nan", map[string]any{"url": "u", "ratio": nanValue()}, []string{`ratio: must be a number`}},
		{"array not a list", map[string]any{"url": "u", "scopes": "read"}, []string{`scopes: must be an array, got string`}},
		{"object with int keys", map[string]any{"url": "u", "headers": map[int]any{1: 1}}, []string{`headers: must be an object, got unsupported Go type map[int]interface {}`}},
	}
	tests = append(tests, struct {
		name   string
		params map[string]any
		want   []string
	}{"file: root missing", map[string]any{"rooot": "x"}, []string{`root: required`, `rooot: unknown parameter (known: root)`}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typeID := "test"
			if strings.HasPrefix(tt.name, "file:") {
				typeID = source.FileTypeID
			}
			err := reg.ValidateParameters(typeID, tt.params)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ve *source.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a *ValidationError", err)
			}
			if ve.TypeID != typeID {
				t.Errorf("TypeID %q", ve.TypeID)
			}
			if len(ve.Problems) != len(tt.want) {
				t.Fatalf("problems:\n%v\nwant:\n%v", ve.Problems, tt.want)
			}
			for i, p := range ve.Problems {
				if got := p.Parameter + ": " + p.Message; !strings.HasPrefix(got, tt.want[i]) {
					t.Errorf("problem %d: %q, want %q", i, got, tt.want[i])
				}
			}
			if !strings.HasPrefix(err.Error(), `source type "`+typeID+`": parameter "`) {
				t.Errorf("message %q", err)
			}
		})
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

func TestValidationNeverEchoesValues(t *testing.T) {
	reg := source.NewRegistry(testType())
	err := reg.ValidateParameters("test", map[string]any{"url": 3, "token": []any{"s3cr3t-value"}, "mode": "s3cr3t-value", "s3cr3t-name": 1})
	if err == nil || strings.Contains(err.Error(), "s3cr3t-value") {
		t.Fatalf("error %v echoes a value", err)
	}
}

func TestRegistry(t *testing.T) {
	file := source.FileType([]string{t.TempDir()})
	reg := source.NewRegistry(testType(), file)
	if got, ok := reg.Get("file"); !ok || got.ID != "file" || len(got.Parameters) != 1 || got.Parameters[0].Name != "root" || !got.Parameters[0].Required {
		t.Errorf("Get(file) = %+v, %v", got, ok)
	}
	if _, ok := reg.Get("nope"); ok {
		t.Error("Get of an unknown type succeeded")
	}
	var ids []string
	for _, ty := range reg.Types() {
		ids = append(ids, ty.ID)
	}
	if strings.Join(ids, ",") != "file,test" {
		t.Errorf("Types() ids %v, want sorted", ids)
	}
	err := reg.ValidateParameters("nope", nil)
	if !errors.Is(err, source.ErrUnknownType) || !strings.Contains(err.Error(), "known: file, test") {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := reg.New("nope", nil, nil); !errors.Is(err, source.ErrUnknownType) {
		t.Errorf("New of unknown type: %v", err)
	}

	// New validates, then fills defaults without changing the caller's map.
	params := map[string]any{"url": "u", "mode": nil}
	s, err := reg.New("test", params, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := s.(nopSource).params
	if got["mode"] != "safe" || got["pages"] != int64(10) || got["url"] != "u" {
		t.Errorf("params given to New: %v", got)
	}
	if _, ok := params["pages"]; ok || params["mode"] != nil {
		t.Errorf("the caller's params were changed: %v", params)
	}
	var ve *source.ValidationError
	if _, err := reg.New("test", map[string]any{"pages": -1}, nil); !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Errorf("New with bad params: %v", err)
	}
	if _, err := reg.New("file", map[string]any{"root": "/"}, nil); !errors.Is(err, source.ErrRootNotAllowed) || !strings.HasPrefix(err.Error(), `source type "file": file source: root "/"`) {
		t.Errorf("file New outside: %v", err)
	}
}

func TestNewRegistryPanics(t *testing.T) {
	ok := testType()
	bad := func(mutate func(*source.Type)) source.Type {
		ty := testType()
		ty.Parameters = append([]source.Parameter(nil), ty.Parameters...)
		mutate(&ty)
		return ty
	}
	tests := []struct {
		name  string
		types []source.Type
		want  string
	}{
		{"no id", []source.Type{bad(func(ty *source.Type) { ty.ID = "" })}, "has no ID"},
		{"no New", []source.Type{bad(func(ty *source.Type) { ty.New = nil })}, "has no New"},
		{"duplicate", []source.Type{ok, ok}, "registered twice"},
		{"unknown parameter type", []source.Type{bad(func(ty *source.Type) { ty.Parameters[0].Type = "str" })}, `type "str" is not one of`},
		{"duplicate parameter", []source.Type{bad(func(ty *source.Type) { ty.Parameters[1].Name = "url" })}, `"url" defined twice`},
		{"unnamed parameter", []source.Type{bad(func(ty *source.Type) { ty.Parameters[1].Name = "" })}, "has no name"},
		{"options on integer", []source.Type{bad(func(ty *source.Type) { ty.Parameters[3].Options = []string{"1"} })}, "options apply to"},
		{"integer range on number", []source.Type{bad(func(ty *source.Type) { ty.Parameters[4].IntegerRange = &[2]int64{0, 1} })}, "integer range"},
		{"inverted float range", []source.Type{bad(func(ty *source.Type) { ty.Parameters[4].FloatRange = &[2]float64{1, 0} })}, "float range"},
		{"default out of range", []source.Type{bad(func(ty *source.Type) { ty.Parameters[3].Default = int64(0) })}, "default: must be between 1 and 100"},
		{"default not an option", []source.Type{bad(func(ty *source.Type) { ty.Parameters[2].Default = "slow" })}, "default: must be one of"},
		{"bad auth parameter", []source.Type{bad(func(ty *source.Type) {
			ty.Auth = []source.AuthMethod{{ID: "basic", Parameters: []source.Parameter{{Name: "u", Type: "text"}}}}
		})}, `auth method "basic"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, tt.want) {
					t.Errorf("panic %v, want it to contain %q", r, tt.want)
				}
			}()
			source.NewRegistry(tt.types...)
		})
	}
}

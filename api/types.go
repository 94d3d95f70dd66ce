package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"

	"github.com/configsync/configsync/secrets"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
)

// typeView is one source type in GET /v1/integration-types.
type typeView struct {
	ID             string         `json:"id"`
	DisplayName    string         `json:"displayName"`
	Description    string         `json:"description"`
	ConfigMetadata configMetadata `json:"configMetadata"`
	AuthMetadata   []authView     `json:"authMetadata"`
}

type configMetadata struct {
	ParametersMetadata []parameterView `json:"parametersMetadata"`
}

// parameterView describes one parameter, with a JSON Schema of its value.
type parameterView struct {
	Name         string         `json:"name"`
	Index        int            `json:"index"`
	Type         string         `json:"type"`
	DisplayName  string         `json:"displayName"`
	Description  string         `json:"description"`
	Required     bool           `json:"required"`
	Secret       bool           `json:"secret"`
	DefaultValue any            `json:"defaultValue"`
	Options      []string       `json:"options"`
	IntegerRange *intRange      `json:"integerRange"`
	FloatRange   *floatRange    `json:"floatRange"`
	JSONSchema   map[string]any `json:"jsonSchema"`
}

type intRange struct {
	Min int64 `json:"min"`
	Max int64 `json:"max"`
}

type floatRange struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// authView is one auth method. Type is the value of the integration's authType
// parameter that selects it (the method's id).
type authView struct {
	ID                  string          `json:"id"`
	DisplayName         string          `json:"displayName"`
	Type                string          `json:"type"`
	ConfigTestSupported bool            `json:"configTestSupported"`
	Parameters          []parameterView `json:"parameters"`
}

// typesBody builds the GET /v1/integration-types answer once: the registry is
// immutable.
func typesBody(reg *source.Registry) ([]byte, error) {
	types := []typeView{}
	for _, t := range reg.Types() {
		v := typeView{ID: t.ID, DisplayName: t.DisplayName, Description: t.Description,
			ConfigMetadata: configMetadata{ParametersMetadata: parameterViews(t.Parameters)}, AuthMetadata: []authView{}}
		for _, a := range t.Auth {
			v.AuthMetadata = append(v.AuthMetadata, authView{ID: a.ID, DisplayName: a.DisplayName, Type: a.ID,
				ConfigTestSupported: a.ConfigTestSupported, Parameters: parameterViews(a.Parameters)})
		}
		types = append(types, v)
	}
	b, err := json.Marshal(map[string]any{"types": types})
	if err != nil {
		return nil, fmt.Errorf("api: encoding the integration types: %w", err)
	}
	return append(b, '\n'), nil
}

func parameterViews(ps []source.Parameter) []parameterView {
	out := make([]parameterView, 0, len(ps))
	for i, p := range ps {
		v := parameterView{Name: p.Name, Index: i, Type: p.Type, DisplayName: p.DisplayName, Description: p.Description,
			Required: p.Required, Secret: p.Secret, DefaultValue: p.Default, Options: p.Options}
		if v.Options == nil {
			v.Options = []string{}
		}
		schema := map[string]any{"type": p.Type, "title": p.DisplayName, "description": p.Description}
		if r := p.IntegerRange; r != nil {
			v.IntegerRange = &intRange{Min: r[0], Max: r[1]}
			schema["minimum"], schema["maximum"] = r[0], r[1]
		}
		if r := p.FloatRange; r != nil {
			v.FloatRange = &floatRange{Min: r[0], Max: r[1]}
			schema["minimum"], schema["maximum"] = r[0], r[1]
		}
		if len(p.Options) > 0 {
			if p.Type == source.TypeArray {
				schema["items"] = map[string]any{"type": "string", "enum": p.Options}
			} else {
				schema["enum"] = p.Options
			}
		}
		if p.Default != nil {
			schema["default"] = p.Default
		}
		if p.Secret {
			schema["writeOnly"] = true
		}
		if p.Type == source.TypeString && p.Required {
			schema["minLength"] = 1
		}
		v.JSONSchema = schema
		out = append(out, v)
	}
	return out
}

func (s *server) listTypes(w http.ResponseWriter, _ *http.Request, _ *call) error {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.types)
	return nil
}

// errNoTest answers a test the integration's type or auth method does not offer.
func errNoTest(detail string) error {
	return &apiError{p: newProblem(http.StatusBadRequest, "test-not-supported", detail)}
}

// testConnection runs a connection test of an http integration with its stored
// parameters and credentials, or those in the body ({"parameters", "credentials",
// "testPath"}, each optional; given credentials are used, not stored). testPath
// defaults to the parameter, then to the first resource of the newest config.
func (s *server) testConnection(w http.ResponseWriter, r *http.Request, c *call) error {
	in, err := s.integration(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	m, _, err := s.object(w, r, true, "parameters", "credentials", "testPath")
	if err != nil {
		return err
	}
	if in.Type != httpsource.TypeID {
		return errNoTest(fmt.Sprintf("source type %q has no connection test", in.Type))
	}
	params := maps.Clone(in.Parameters)
	if raw := m["parameters"]; !isNull(raw) {
		params = map[string]any{}
		if jsonKind(raw) != "an object" || decodeNumbers(raw, &params) != nil {
			return errValidation("parameters must be an object", []FieldError{{Field: "parameters", Message: "must be an object, not " + jsonKind(raw)}})
		}
		var ve *source.ValidationError
		if err := s.d.Sources.ValidateParameters(in.Type, params); errors.As(err, &ve) {
			var fields []FieldError
			for _, p := range ve.Problems {
				fields = append(fields, FieldError{Field: "parameters." + p.Parameter, Message: p.Message})
			}
			return errValidation("the parameters are not valid", fields)
		} else if err != nil {
			return err
		}
	}
	if params == nil {
		params = map[string]any{}
	}
	if raw := m["testPath"]; !isNull(raw) {
		var p string
		if json.Unmarshal(raw, &p) != nil {
			return errValidation("testPath must be a string", []FieldError{{Field: "testPath", Message: "must be a string, not " + jsonKind(raw)}})
		}
		params["testPath"] = p
	}
	authType, _ := params["authType"].(string)
	if authType == "" {
		authType = httpsource.AuthNone
	}
	t, _ := s.d.Sources.Get(in.Type)
	for _, a := range t.Auth {
		if a.ID == authType && !a.ConfigTestSupported {
			return errNoTest(fmt.Sprintf("auth method %q does not support a connection test; the first sync run tests it", authType))
		}
	}
	if tp, _ := params["testPath"].(string); tp == "" {
		cfg, err := s.newestConfig(r.Context(), in)
		if err != nil {
			return err
		}
		if cfg != nil && len(cfg.Resources) > 0 {
			params["testPath"] = httpsource.DefaultTestPath(cfg.Resources[0].Kind, cfg.Resources[0].Selector.Extra)
		}
	}
	var creds secrets.Credentials
	if raw := m["credentials"]; !isNull(raw) {
		if jsonKind(raw) != "an object" || json.Unmarshal(raw, &creds) != nil {
			return errValidation("credentials must be an object of strings", []FieldError{{Field: "credentials", Message: "must be an object of strings"}})
		}
	} else if creds, err = s.d.Integrations.Credentials(r.Context(), in.Tenant, in.ID); err != nil {
		return err
	}
	res := httpsource.TestConnection(r.Context(), s.cfg.HTTPSourceOptions, params, creds)
	clear(creds)
	return writeJSON(w, http.StatusOK, res)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/configsync/configsync/api"
)

// apiClient calls the control-plane API for the CLI commands that go through it.
type apiClient struct {
	base, token string
	http        *http.Client
}

// clientFlags are the API address and token of the client commands.
type clientFlags struct{ url, token, tenant string }

func (c *clientFlags) register(fs *flag.FlagSet, env *environment) {
	fs.StringVar(&c.url, "api-url", env.envOr("CONFIGSYNC_API_URL", "http://127.0.0.1:8080"), "the API (CONFIGSYNC_API_URL)")
	fs.StringVar(&c.token, "token", env.envOr("CONFIGSYNC_TOKEN", ""), "API token (CONFIGSYNC_TOKEN; configsync dev prints one)")
	fs.StringVar(&c.tenant, "tenant", env.envOr("CONFIGSYNC_TENANT", "default"), "tenant (CONFIGSYNC_TENANT)")
}

func (c *clientFlags) client() (*apiClient, error) {
	if c.token == "" {
		return nil, &usageError{"--token (or CONFIGSYNC_TOKEN) is required"}
	}
	return &apiClient{base: strings.TrimRight(c.url, "/"), token: c.token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do sends a request and decodes a 2xx answer into out; an error answer becomes an
// error carrying the problem's detail and field errors.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var p api.Problem
		if json.Unmarshal(b, &p) == nil && p.Title != "" {
			msg := fmt.Sprintf("%s %s: %d %s: %s", method, path, p.Status, p.Title, p.Detail)
			for _, fe := range p.Errors {
				fb, _ := json.Marshal(fe)
				msg += "\n  " + string(fb)
			}
			return resp.StatusCode, errors.New(msg)
		}
		return resp.StatusCode, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/configsync/configsync/api"
	"github.com/configsync/configsync/queue"
	"github.com/configsync/configsync/source/httpsource"
)

// authFlags configure how the API checks tokens.
type authFlags struct {
	publicKeyFile, audience, issuer string
}

func (a *authFlags) register(fs *flag.FlagSet, env *environment) {
	fs.StringVar(&a.publicKeyFile, "jwt-public-key", env.envOr("CONFIGSYNC_JWT_PUBLIC_KEY", ""), "PEM file of the RSA public key for RS256 tokens (CONFIGSYNC_JWT_PUBLIC_KEY); HS256 uses CONFIGSYNC_JWT_SECRET")
	fs.StringVar(&a.audience, "jwt-audience", env.envOr("CONFIGSYNC_JWT_AUDIENCE", ""), "required token audience, if any (CONFIGSYNC_JWT_AUDIENCE)")
	fs.StringVar(&a.issuer, "jwt-issuer", env.envOr("CONFIGSYNC_JWT_ISSUER", ""), "required token issuer, if any (CONFIGSYNC_JWT_ISSUER)")
}

// config builds the API's token settings from the flags and CONFIGSYNC_JWT_SECRET.
func (a *authFlags) config(env *environment) (api.Config, error) {
	var cfg api.Config
	if s, ok := env.lookup("CONFIGSYNC_JWT_SECRET"); ok && s != "" {
		cfg.JWTSecret = []byte(s)
	}
	if a.publicKeyFile != "" {
		b, err := os.ReadFile(a.publicKeyFile)
		if err != nil {
			return cfg, fmt.Errorf("reading the JWT public key: %w", err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return cfg, fmt.Errorf("%s holds no PEM block", a.publicKeyFile)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return cfg, fmt.Errorf("parsing the JWT public key: %w", err)
		}
		cfg.JWTPublicKey = key
	}
	if cfg.JWTSecret == nil && cfg.JWTPublicKey == nil {
		return cfg, errors.New("set CONFIGSYNC_JWT_SECRET (HS256, at least 32 bytes) or --jwt-public-key (RS256): every /v1 route needs a token")
	}
	cfg.Audience, cfg.Issuer = a.audience, a.issuer
	return cfg, nil
}

// runAPI serves the control-plane HTTP API.
func runAPI(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("api", env.stderr)
	var conn connFlags
	conn.registerService(fs, env)
	var auth authFlags
	auth.register(fs, env)
	addr := fs.String("http-addr", env.envOr("CONFIGSYNC_HTTP_ADDR", ":8080"), "address to listen on (CONFIGSYNC_HTTP_ADDR)")
	allowPrivate := fs.Bool("http-allow-private", env.envOr("CONFIGSYNC_HTTP_ALLOW_PRIVATE", "") == "true", "let connection tests reach private addresses (CONFIGSYNC_HTTP_ALLOW_PRIVATE=true)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := auth.config(env)
	if err != nil {
		return err
	}
	st, err := openService(ctx, env, stackOptions{conn: conn, httpAllowPrivate: *allowPrivate, queue: queue.Options{}})
	if err != nil {
		return err
	}
	defer st.close()
	log := st.log
	srv, bound, err := serveAPI(st, cfg, *addr, *allowPrivate, log)
	if err != nil {
		return err
	}
	log.Info("API listening", zap.String("addr", bound))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// serveAPI starts the API (which also serves /healthz, /readyz, /metrics) on addr.
func serveAPI(st *stack, cfg api.Config, addr string, allowPrivate bool, log *zap.Logger) (*http.Server, string, error) {
	cfg.Log = log
	cfg.HTTPSourceOptions = httpsource.Options{AllowPrivate: allowPrivate}
	h, err := api.New(cfg, api.Deps{
		Integrations: st.integrations, Catalog: st.catalog, Runs: st.runs, Queue: st.q, Sources: st.sources,
		Ready: func(ctx context.Context) error {
			if err := st.rdb.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis: %w", err)
			}
			if !st.nc.IsConnected() {
				return errors.New("nats: not connected")
			}
			return nil
		},
	})
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listening on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// runToken mints a token with CONFIGSYNC_JWT_SECRET and prints only the token.
func runToken(_ context.Context, env *environment, args []string) error {
	fs := newFlags("token", env.stderr)
	var tenants listFlag
	fs.Var(&tenants, "tenant", "tenant the token may use (repeatable or comma-separated; required)")
	write := fs.Bool("write", false, "the token may change things, not only read them")
	ttl := fs.Duration("ttl", api.DefaultTokenTTL, "lifetime")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(tenants) == 0 {
		return &usageError{"--tenant is required"}
	}
	secret, ok := env.lookup("CONFIGSYNC_JWT_SECRET")
	if !ok || secret == "" {
		return errors.New("CONFIGSYNC_JWT_SECRET must be set: tokens are signed with it (HS256)")
	}
	tok, err := api.MintToken([]byte(secret), tenants, *write, *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, tok)
	return nil
}

// devJWTSecret uses CONFIGSYNC_JWT_SECRET when set, else a secret generated once and
// kept (0600) under the data folder.
func devJWTSecret(env *environment, data string) ([]byte, error) {
	if s, ok := env.lookup("CONFIGSYNC_JWT_SECRET"); ok && s != "" {
		return []byte(s), nil
	}
	path := filepath.Join(data, "jwt.secret")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		b = []byte(base64.RawURLEncoding.EncodeToString(raw))
		if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("keeping the generated JWT secret: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading the JWT secret: %w", err)
	}
	return []byte(strings.TrimSpace(string(b))), nil
}

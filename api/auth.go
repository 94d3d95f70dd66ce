package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/configsync/configsync/integration"
)

// DefaultTokenTTL is the lifetime MintToken gives a token when ttl is zero or
// negative: 24 hours.
const DefaultTokenTTL = 24 * time.Hour

// tokenLeeway is the clock skew tolerated on exp, nbf and iat.
const tokenLeeway = 30 * time.Second

// Claims are what a token carries: the tenants it may use and whether it may write,
// besides the registered claims (exp is required; aud and iss are checked when the
// API is configured with them).
type Claims struct {
	// Tenants lists the tenant ids the token may read (and write, with Write).
	Tenants []string `json:"tenants"`
	// Write lets the token create, change and delete; without it only GET routes
	// answer.
	Write bool `json:"write"`
	jwt.RegisteredClaims
}

// MintToken returns an HS256 token for tenants, signed with secret (at least
// MinSecretBytes bytes), valid from now for ttl (DefaultTokenTTL when ttl <= 0). It
// is what `configsync token` and `configsync dev` print.
func MintToken(secret []byte, tenants []string, write bool, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < MinSecretBytes {
		return "", fmt.Errorf("api: minting a token: the secret is %d bytes, fewer than the %d HS256 needs", len(secret), MinSecretBytes)
	}
	if len(tenants) == 0 {
		return "", errors.New("api: minting a token: name at least one tenant")
	}
	for _, t := range tenants {
		if !integration.ValidID(t) {
			return "", fmt.Errorf("api: minting a token: tenant %q must match %s", t, integration.IDPattern)
		}
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails (Go 1.24+)
	now = now.Truncate(time.Second)
	claims := Claims{
		Tenants: slices.Clone(tenants),
		Write:   write,
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        hex.EncodeToString(jti[:]),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("api: signing a token: %w", err)
	}
	return tok, nil
}

// errUnauthorized answers a missing or bad token. The detail says which of the two,
// and whether the token expired, but never why a signature failed.
func errUnauthorized(detail string, cause error) error {
	return &apiError{p: newProblem(http.StatusUnauthorized, "unauthorized", detail), cause: cause}
}

// bearer verifies the request's bearer token.
func (s *server) bearer(r *http.Request) (*Claims, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errUnauthorized("this route needs Authorization: Bearer <token>", nil)
	}
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, errUnauthorized("the Authorization header must be Bearer <token>", nil)
	}
	claims := &Claims{}
	_, err := s.parser.ParseWithClaims(tok, claims, s.key)
	if err != nil {
		s.log.Debug("token refused", zap.Error(err)) // jwt's errors name the check, not the token
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, errUnauthorized("the token has expired", err)
		}
		return nil, errUnauthorized("the token is not valid", err)
	}
	if len(claims.Tenants) == 0 {
		return nil, errUnauthorized("the token names no tenants", nil)
	}
	return claims, nil
}

// key returns the verification key for the token's algorithm. The parser only lets
// through the algorithms configured, and each gets its own key: an HS256 token is
// never checked against the RS256 public key.
func (s *server) key(t *jwt.Token) (any, error) {
	switch t.Method {
	case jwt.SigningMethodHS256:
		if len(s.cfg.JWTSecret) > 0 {
			return s.cfg.JWTSecret, nil
		}
	case jwt.SigningMethodRS256:
		if s.cfg.JWTPublicKey != nil {
			return s.cfg.JWTPublicKey, nil
		}
	}
	return nil, fmt.Errorf("signing method %v is not accepted", t.Header["alg"])
}

// errReadOnly answers a write with a read-only token.
var errReadOnly = &apiError{p: newProblem(http.StatusForbidden, "forbidden", "the token is read-only (its write claim is false)")}

// authorize applies an access rule. The order matters: no token is 401; a tenant the
// token does not name is 404 whatever the method, so that a read-only token learns
// nothing more about another tenant than a writing one; only then is a write by a
// read-only token 403.
func (s *server) authorize(w http.ResponseWriter, r *http.Request, a access) (*call, error) {
	c := &call{}
	if a == public {
		return c, nil
	}
	if a == webhook && r.Header.Get("Authorization") == "" && r.Header.Get(SignatureHeader) != "" {
		return s.authorizeSignature(w, r)
	}
	claims, err := s.bearer(r)
	if err != nil {
		return nil, err
	}
	c.claims = claims
	switch a {
	case anyToken:
		return c, nil
	case tokenTenantWrite:
		if len(claims.Tenants) != 1 {
			return nil, errBadRequest(fmt.Sprintf("this route acts on the token's tenant, and the token names %d tenants; "+
				"name exactly one, or use /v1/tenants/{tenant}/integrations/{id}/config", len(claims.Tenants)))
		}
		c.tenant = claims.Tenants[0]
		if !integration.ValidID(c.tenant) {
			return nil, errUnauthorized("the token's tenant is not a valid tenant id", nil)
		}
	default:
		c.tenant = r.PathValue("tenant")
		if !integration.ValidID(c.tenant) || !slices.Contains(claims.Tenants, c.tenant) {
			return nil, errNotFound("tenant " + quoteShort(c.tenant))
		}
	}
	if a != tenantRead && !claims.Write {
		return nil, errReadOnly
	}
	return c, nil
}

// quoteShort quotes s for a message, cut to 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return fmt.Sprintf("%q", s)
}

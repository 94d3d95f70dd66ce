package httpsource

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// HTTPError is a request that finally got a status other than success: after
// retries, and after one token refresh for a 401.
type HTTPError struct {
	// Method is the request's method.
	Method string
	// URL is the request's URL without credentials: no userinfo, and the values
	// of query parameters that carry credentials replaced.
	URL string
	// StatusCode is the final response's status.
	StatusCode int
	// Excerpt is the start of the response body, cleaned of control characters
	// and of every known credential.
	Excerpt string
	// Note says why no retry was made when that is not obvious (a Retry-After
	// beyond the limit), or is empty.
	Note string
}

// Error formats the error as "GET https://h/x: 503 Service Unavailable: <excerpt>".
func (e *HTTPError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Note != "" {
		b.WriteString(" (" + e.Note + ")")
	}
	if e.Excerpt != "" {
		b.WriteString(": " + e.Excerpt)
	}
	return b.String()
}

// RequestError is a request that got no response: a network failure, a refused
// address, a body too large or unreadable. Err is the cause, never Go's
// *url.Error (whose message holds the full URL, credentials included).
type RequestError struct {
	// Method and URL (without credentials) name the request.
	Method, URL string
	// Err is the cause.
	Err error
}

// Error formats the error as "GET https://h/x: <cause>".
func (e *RequestError) Error() string { return e.Method + " " + e.URL + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *RequestError) Unwrap() error { return e.Err }

// bareURLError strips Go's *url.Error, whose message quotes the URL, and keeps
// its cause.
func bareURLError(err error) error {
	var ue *url.Error
	for errors.As(err, &ue) {
		err = ue.Err
	}
	return err
}

// scrubbed is an error whose message went through the scrubber; the cause is
// kept for errors.Is and errors.As.
type scrubbed struct {
	msg   string
	cause error
}

// Error returns the scrubbed message.
func (e *scrubbed) Error() string { return e.msg }

// Unwrap returns the cause.
func (e *scrubbed) Unwrap() error { return e.cause }

// minSecretLen is the shortest secret the scrubber replaces: a shorter one
// would mangle every message (a password "e"), and is no secret anyway.
const minSecretLen = 4

// maxDynamicSecrets bounds the obtained tokens a scrubber remembers: tokens
// are refreshed for as long as a source lives.
const maxDynamicSecrets = 16

// redactedText replaces secrets in messages.
const redactedText = "[redacted]"

// scrubber removes known secrets from text. Credentials are added when the
// source is made, tokens whenever they are obtained; safe for concurrent use.
type scrubber struct {
	mu      sync.RWMutex
	static  []string
	dynamic []string
	r       *strings.Replacer
}

// add registers secret values, with the spellings they take in URLs, JSON and
// Basic auth headers.
func (s *scrubber) add(dynamic bool, vals ...string) {
	var forms []string
	for _, v := range vals {
		if len(v) < minSecretLen {
			continue
		}
		forms = append(forms, v, url.QueryEscape(v), url.PathEscape(v))
		if j, err := json.Marshal(v); err == nil {
			forms = append(forms, string(j[1:len(j)-1]))
		}
	}
	if len(forms) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if dynamic {
		s.dynamic = append(s.dynamic, forms...)
		if n := len(s.dynamic) - maxDynamicSecrets*4; n > 0 {
			s.dynamic = slices.Delete(s.dynamic, 0, n)
		}
	} else {
		s.static = append(s.static, forms...)
	}
	all := slices.Concat(s.static, s.dynamic)
	// Longest first, so a secret that contains another is replaced whole.
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	all = slices.Compact(all)
	pairs := make([]string, 0, 2*len(all))
	for _, f := range all {
		pairs = append(pairs, f, redactedText)
	}
	s.r = strings.NewReplacer(pairs...)
}

// addBasic registers a Basic auth pair, in its header spelling too.
func (s *scrubber) addBasic(user, pass string) {
	s.add(false, user, pass, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
}

// scrub returns text with every known secret replaced.
func (s *scrubber) scrub(text string) string {
	s.mu.RLock()
	r := s.r
	s.mu.RUnlock()
	if r == nil {
		return text
	}
	return r.Replace(text)
}

// minFragmentLen is the shortest start of a secret scrubFragments replaces.
const minFragmentLen = 6

// scrubFragments returns text scrubbed, and with the longest start (of at
// least minFragmentLen bytes) of each secret replaced too. gojq cuts long
// values in its messages ("Bearer planted-to ..."), which leaves the start
// of a secret that plain replacement does not recognise.
func (s *scrubber) scrubFragments(text string) string {
	text = s.scrub(text)
	s.mu.RLock()
	all := slices.Concat(s.static, s.dynamic)
	s.mu.RUnlock()
	for _, sec := range all {
		for n := len(sec) - 1; n >= minFragmentLen; n-- {
			if strings.Contains(text, sec[:n]) {
				text = strings.ReplaceAll(text, sec[:n], redactedText)
				break
			}
		}
	}
	return text
}

// wrap returns err with its message scrubbed, keeping the cause.
func (s *scrubber) wrap(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := s.scrub(msg)
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, cause: err}
}

// redactURL renders u for messages: without userinfo or fragment, and with the
// values of the query parameters named in credQuery replaced.
func redactURL(u *url.URL, credQuery []string) string {
	if u == nil {
		return ""
	}
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if c.RawQuery != "" && len(credQuery) > 0 {
		parts := strings.Split(c.RawQuery, "&")
		for i, p := range parts {
			name, _, _ := strings.Cut(p, "=")
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
			if slices.Contains(credQuery, name) {
				parts[i] = url.QueryEscape(name) + "=REDACTED"
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	return c.String()
}

// excerptLen is the most runes of a body an error quotes.
const excerptLen = 200

// excerpt returns the start of body for an error: scrubbed of secrets first
// (so that no secret is cut in half and left partly visible), then with
// control characters and invalid UTF-8 replaced, then cut.
func excerpt(body []byte, scrub func(string) string) string {
	const window = 2048
	if len(body) > window {
		body = body[:window]
	}
	text := scrub(string(body))
	var b strings.Builder
	n := 0
	for _, r := range text {
		if n == excerptLen {
			b.WriteString("…")
			break
		}
		switch {
		case r == utf8.RuneError:
			b.WriteRune('?')
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r):
			b.WriteRune('?')
		default:
			b.WriteRune(r)
		}
		n++
	}
	return strings.TrimSpace(b.String())
}

package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/configsync/configsync/jsonstream"
	"go.yaml.in/yaml/v3"
)

// FileTypeID is the type id of the file source.
const FileTypeID = "file"

// DefaultPageSize is the most items a file source puts in one page unless
// WithPageSize says otherwise.
const DefaultPageSize = 500

// fileReadBuffer is the read buffer of the JSON reader: small, since a page's
// items are the data a fetch is meant to hold.
const fileReadBuffer = 64 << 10

// Errors of the file source, for errors.Is.
var (
	// ErrOutsideRoot means a resource's path leads outside the source's root: an
	// absolute path, a ".." element, or a symlink (of a directory or a file) that
	// resolves outside root.
	ErrOutsideRoot = errors.New("path leads outside root")
	// ErrRootNotAllowed means the root parameter, or what it resolves to through
	// symlinks, is outside every directory the deployment allows.
	ErrRootNotAllowed = errors.New("root is outside the directories this deployment allows")
	// ErrNoMatch means a glob matched no file. It is an error, not an empty
	// kind: a typo must not count as a kind fetched whole (and emptied).
	ErrNoMatch = errors.New("no file matches")
)

// FileOption configures the file source type made by FileType.
type FileOption func(*fileOptions)

// fileOptions are the settings FileOptions change.
type fileOptions struct {
	pageSize     int
	maxItemBytes int
	now          func() time.Time
}

// WithPageSize sets the most items in one page (DefaultPageSize if n <= 0).
func WithPageSize(n int) FileOption {
	return func(o *fileOptions) {
		if n > 0 {
			o.pageSize = n
		}
	}
}

// WithMaxItemBytes bounds one JSON item, and a whole YAML file, in bytes
// (jsonstream.DefaultMaxItemBytes if n <= 0). A larger one fails the fetch.
func WithMaxItemBytes(n int) FileOption {
	return func(o *fileOptions) {
		if n > 0 {
			o.maxItemBytes = n
		}
	}
}

// WithClock sets the clock that stamps Page.FetchedAt (time.Now if nil).
func WithClock(now func() time.Time) FileOption {
	return func(o *fileOptions) {
		if now != nil {
			o.now = now
		}
	}
}

// FileType returns the "file" source type, which reads a kind's items from files
// under the integration's root directory. allowedRoots are the directories a
// root may lie in (in configsync dev, the working directory); a relative root is
// taken relative to the first of them.
//
// Each resource reads the file, or the files matching the glob, named by its
// selector's path, relative to root (default "<kind>.json"). A file named
// *.yml or *.yaml holds YAML documents, each a list of objects or one object; any
// other file holds JSON: an array of objects, one object, or NDJSON (detected by
// jsonstream). Files of a glob are read in lexical order, each streamed: a page
// of items is all a fetch holds (a YAML document is decoded whole, so a YAML file
// is limited to WithMaxItemBytes).
//
// Containment: root must resolve, through symlinks, to a directory inside an
// allowed root. path must be relative, have no ".." element, and resolve,
// through symlinks of directories and files, inside root; files are then opened
// through an os.Root, so a symlink swapped in after the check cannot escape
// either. A glob that matches no file fails with ErrNoMatch; a glob skips the
// directories it matches.
//
// Malformed items: an item that is not valid JSON, or not an object, is
// skipped, and the fetch goes on to deliver the items it can read; it then
// fails with an *ItemErrors listing each bad item by file and 0-based index in
// that file, so a broken file never counts as fetched whole (nothing is
// deleted) while its good items still sync. A structural error that leaves no
// way to find the next item (inside a JSON array, or YAML syntax) ends that
// file; in NDJSON the reader resumes at the next line (see jsonstream). Errors
// name the kind and paths relative to root, never the server's directories.
func FileType(allowedRoots []string, opts ...FileOption) Type {
	o := fileOptions{pageSize: DefaultPageSize, maxItemBytes: jsonstream.DefaultMaxItemBytes, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	allowed := slices.Clone(allowedRoots)
	return Type{
		ID:          FileTypeID,
		DisplayName: "Files",
		Description: "Reads each kind's items from JSON, NDJSON or YAML files in a directory of the server.",
		Parameters: []Parameter{{
			Name:        "root",
			Type:        TypeString,
			DisplayName: "Root directory",
			Description: "The directory the files are read from; it must lie inside a directory the deployment allows. " +
				"Each resource's selector.path (a file or glob, default <kind>.json) is relative to it.",
			Required: true,
		}},
		New: func(params map[string]any, _ map[string]string) (Source, error) {
			s, err := newFileSource(allowed, o, params)
			if err != nil {
				return nil, err // not a typed nil in the interface
			}
			return s, nil
		},
	}
}

// fileSource is a Source reading files under one root. It is immutable, so it is
// safe for concurrent use.
type fileSource struct {
	root    string   // as configured, for messages
	abs     string   // absolute and clean, not yet resolved through symlinks
	allowed []string // absolute and clean
	opts    fileOptions
}

// newFileSource checks params and that root exists inside an allowed root.
func newFileSource(allowedRoots []string, o fileOptions, params map[string]any) (*fileSource, error) {
	root, ok := params["root"].(string)
	if !ok || root == "" {
		return nil, errors.New(`file source: parameter "root" is required and must be a string`)
	}
	s := &fileSource{root: root, opts: o}
	for _, a := range allowedRoots {
		abs, err := filepath.Abs(a)
		if err != nil {
			return nil, fmt.Errorf("file source: resolving an allowed root: %w", bareErr(err))
		}
		s.allowed = append(s.allowed, abs)
	}
	if len(s.allowed) == 0 {
		return nil, errors.New("file source: this deployment allows no directory")
	}
	if filepath.IsAbs(root) {
		s.abs = filepath.Clean(root)
	} else {
		s.abs = filepath.Join(s.allowed[0], root)
	}
	if _, err := s.resolveRoot(); err != nil {
		return nil, fmt.Errorf("file source: %w", err)
	}
	return s, nil
}

// resolveRoot returns root resolved through symlinks, after checking that it is
// a directory inside an allowed root. It checks the lexical path first, so that
// nothing about directories outside the allowed roots is revealed.
func (s *fileSource) resolveRoot() (string, error) {
	var resolvedAllowed []string
	for _, a := range s.allowed {
		if r, err := filepath.EvalSymlinks(a); err == nil {
			resolvedAllowed = append(resolvedAllowed, r)
		}
	}
	inAllowed := func(p string, lexical bool) bool {
		for _, a := range resolvedAllowed {
			if within(a, p) {
				return true
			}
		}
		if lexical {
			for _, a := range s.allowed {
				if within(a, p) {
					return true
				}
			}
		}
		return false
	}
	if !inAllowed(s.abs, true) {
		return "", fmt.Errorf("root %q: %w", s.root, ErrRootNotAllowed)
	}
	real, err := filepath.EvalSymlinks(s.abs)
	if err != nil {
		return "", fmt.Errorf("root %q: %w", s.root, bareErr(err))
	}
	if !inAllowed(real, false) {
		return "", fmt.Errorf("root %q (through a symlink): %w", s.root, ErrRootNotAllowed)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("root %q: %w", s.root, bareErr(err))
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("root %q is not a directory", s.root)
	}
	return real, nil
}

// Fetch reads the file or files of r (see FileType) and yields their items in
// pages.
func (s *fileSource) Fetch(ctx context.Context, r Resource, yield func(Page) error) error {
	p := &pager{size: s.opts.pageSize, now: s.opts.now, yield: yield}
	err := s.fetch(ctx, r, p)
	if p.yieldErr != nil {
		return p.yieldErr
	}
	if err == nil {
		err = p.bad.Err()
	}
	if err != nil {
		return fmt.Errorf("file source: kind %q: %w", r.Kind, err)
	}
	return nil
}

// fetch does Fetch's work; its errors lack the kind, and it leaves malformed
// items in p.bad.
func (s *fileSource) fetch(ctx context.Context, r Resource, p *pager) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pattern, err := resourcePath(r)
	if err != nil {
		return err
	}
	rel, err := cleanRelPath(pattern)
	if err != nil {
		return fmt.Errorf("path %q: %w", pattern, err)
	}
	realRoot, err := s.resolveRoot()
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(realRoot)
	if err != nil {
		return fmt.Errorf("root %q: %w", s.root, bareErr(err))
	}
	defer root.Close()
	files, err := matchFiles(root, realRoot, rel)
	if err != nil {
		return err
	}
	for _, m := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.readFile(ctx, root, m, p); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return p.flush()
}

// resourcePath returns the selector's path, or "<kind>.json".
func resourcePath(r Resource) (string, error) {
	v, ok := r.Selector["path"]
	if !ok || v == nil {
		if r.Kind == "" {
			return "", errors.New("the resource has no kind and its selector no path")
		}
		return r.Kind + ".json", nil
	}
	p, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("selector.path must be a string, got %s", jsonKind(v))
	}
	if p == "" {
		return "", errors.New("selector.path is empty")
	}
	return p, nil
}

// cleanRelPath checks a resource's path, lexically, and returns it cleaned and
// slash-separated. It refuses the empty path, NUL bytes, absolute paths (and
// Windows volume names), any ".." element, and a path naming root itself. A
// path it accepts is local: filepath.IsLocal and fs.ValidPath hold.
func cleanRelPath(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return "", errors.New("path holds a NUL byte")
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`) || filepath.IsAbs(p) || filepath.VolumeName(p) != "":
		return "", fmt.Errorf("absolute path: %w", ErrOutsideRoot)
	}
	slashed := filepath.ToSlash(p)
	for el := range strings.SplitSeq(slashed, "/") {
		if el == ".." {
			return "", fmt.Errorf(`".." element: %w`, ErrOutsideRoot)
		}
	}
	c := path.Clean(slashed)
	if c == "." {
		return "", errors.New("path names root itself, not a file")
	}
	if !fs.ValidPath(c) || !filepath.IsLocal(filepath.FromSlash(c)) {
		return "", ErrOutsideRoot // unreachable given the checks above; kept as a guard
	}
	for el := range strings.SplitSeq(c, "/") {
		if _, err := path.Match(el, ""); err != nil {
			return "", fmt.Errorf("bad glob: %w", err)
		}
	}
	return c, nil
}

// hasMeta reports whether a path element is a glob pattern.
func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// match is a file to read: its name as the resource's path gives it, and the
// path it resolved to through symlinks, both relative to root.
type match struct{ name, real string }

// matchFiles returns the regular files that the clean path or glob rel names,
// each checked to resolve inside root.
func matchFiles(root *os.Root, realRoot, rel string) ([]match, error) {
	if !hasMeta(rel) {
		real, err := contained(realRoot, rel)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		fi, err := root.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, bareErr(err))
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %s, not a regular file", rel, modeName(fi.Mode()))
		}
		return []match{{rel, real}}, nil
	}

	cands := []string{"."}
	for el := range strings.SplitSeq(rel, "/") {
		var next []string
		for _, dir := range cands {
			if !hasMeta(el) {
				next = append(next, path.Join(dir, el))
				continue
			}
			real, err := contained(realRoot, dir)
			if err != nil {
				if notFound(err) {
					continue
				}
				return nil, fmt.Errorf("%s: %w", dir, err)
			}
			entries, err := fs.ReadDir(root.FS(), real)
			if err != nil {
				if notFound(err) {
					continue // dir matched a file, or vanished
				}
				return nil, fmt.Errorf("%s: %w", dir, bareErr(err))
			}
			for _, e := range entries {
				if ok, _ := path.Match(el, e.Name()); ok { // el was checked by cleanRelPath
					next = append(next, path.Join(dir, e.Name()))
				}
			}
		}
		cands = next
	}

	var files []match
	for _, c := range cands {
		real, err := contained(realRoot, c)
		if err != nil {
			if notFound(err) {
				continue
			}
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		fi, err := root.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, bareErr(err))
		}
		switch {
		case fi.IsDir():
			continue
		case !fi.Mode().IsRegular():
			return nil, fmt.Errorf("%s: %s, not a regular file", c, modeName(fi.Mode()))
		}
		files = append(files, match{c, real})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("path %q: %w", rel, ErrNoMatch)
	}
	return files, nil
}

// contained checks that rel, resolved through symlinks, lies inside realRoot,
// and returns the resolved path relative to realRoot (slash-separated, "." for
// realRoot). Opening that path through an os.Root follows no symlink unless one
// was swapped in since, and os.Root refuses any that escapes. (os.Root refuses
// absolute symlinks outright, so opening the unresolved name would refuse an
// absolute symlink that points inside root.) Its errors hold no absolute path.
func contained(realRoot, rel string) (string, error) {
	resolved, err := filepath.EvalSymlinks(filepath.Join(realRoot, filepath.FromSlash(rel)))
	if err != nil {
		return "", bareErr(err)
	}
	if !within(realRoot, resolved) {
		return "", fmt.Errorf("a symlink resolves outside root: %w", ErrOutsideRoot)
	}
	r, err := filepath.Rel(realRoot, resolved)
	if err != nil {
		return "", fmt.Errorf("a symlink resolves outside root: %w", ErrOutsideRoot)
	}
	return filepath.ToSlash(r), nil
}

// within reports whether the clean absolute path child is parent or lies under it.
func within(parent, child string) bool {
	if child == parent {
		return true
	}
	if !strings.HasSuffix(parent, string(filepath.Separator)) {
		parent += string(filepath.Separator)
	}
	return strings.HasPrefix(child, parent)
}

// notFound reports whether err means a path does not exist or a non-directory
// stands where a directory was expected.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// bareErr strips the path from a *fs.PathError or *os.LinkError, whose paths
// may be the server's absolute directories; callers name the path relative to
// root themselves.
func bareErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// modeName names a file's type for messages.
func modeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// readFile streams the items of one file into p. Its format follows the
// extension of the name the resource gave, not of a symlink's target.
func (s *fileSource) readFile(ctx context.Context, root *os.Root, m match, p *pager) error {
	rel := m.name
	f, err := root.Open(m.real)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, bareErr(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", rel, bareErr(err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %s, not a regular file", rel, modeName(fi.Mode()))
	}
	r := &pathlessReader{r: f}
	switch strings.ToLower(path.Ext(rel)) {
	case ".yml", ".yaml":
		return s.readYAML(ctx, r, rel, p)
	default:
		return s.readJSON(ctx, r, rel, p)
	}
}

// readJSON streams a JSON array, object or NDJSON file into p.
func (s *fileSource) readJSON(ctx context.Context, r io.Reader, rel string, p *pager) error {
	jr := jsonstream.NewReader(r, jsonstream.Options{MaxItemBytes: s.opts.maxItemBytes, BufferSize: fileReadBuffer})
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.begin()
		item, err := jr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var se *jsonstream.SyntaxError
			if !errors.As(err, &se) {
				return fmt.Errorf("%s: %w", rel, err)
			}
			p.bad.Add(&ItemError{Path: rel, Index: jr.Index(), Err: err})
			if jr.Format() == jsonstream.Array {
				return nil // final: the rest of the array cannot be found
			}
			continue
		}
		if err := checkObject(item); err != nil {
			p.bad.Add(&ItemError{Path: rel, Index: jr.Index(), Err: err})
			continue
		}
		if err := p.add(bytes.Clone(item)); err != nil {
			return err
		}
	}
}

// checkObject checks that item is one valid JSON object.
func checkObject(item []byte) error {
	if !json.Valid(item) {
		var raw json.RawMessage
		if err := json.Unmarshal(item, &raw); err != nil {
			return fmt.Errorf("invalid JSON: %w", err)
		}
		return errors.New("invalid JSON")
	}
	trimmed := bytes.TrimLeft(item, " \t\r\n")
	if trimmed[0] != '{' {
		return fmt.Errorf("not a JSON object but %s", jsonstream.TypeName(trimmed))
	}
	return nil
}

// readYAML reads a YAML file, one document at a time, into p. Each document is
// a list of objects or one object; an empty or null document holds no item.
func (s *fileSource) readYAML(ctx context.Context, r io.Reader, rel string, p *pager) error {
	lr := &capReader{r: r, left: int64(s.opts.maxItemBytes)}
	dec := yaml.NewDecoder(lr)
	index := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		readAt := p.now()
		var doc yaml.Node
		err := dec.Decode(&doc)
		switch {
		case err == io.EOF:
			return nil
		case err == nil:
		case errors.Is(lr.err, errTooLarge):
			p.bad.Add(&ItemError{Path: rel, Index: index, Err: fmt.Errorf("YAML file larger than %d bytes (use JSON or NDJSON for large inputs)", s.opts.maxItemBytes)})
			return nil
		case lr.err != nil:
			return fmt.Errorf("%s: %w", rel, lr.err)
		default:
			// The parser cannot find the next item: the rest of the file is lost.
			p.bad.Add(&ItemError{Path: rel, Index: index, Err: err})
			return nil
		}
		n := &doc
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				continue
			}
			n = n.Content[0]
		}
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		normalizeYAML(n)
		switch {
		case n.Kind == yaml.SequenceNode:
			for _, c := range n.Content {
				if err := ctx.Err(); err != nil {
					return err
				}
				p.beginAt(readAt)
				item, err := yamlItem(c)
				index++
				if err != nil {
					p.bad.Add(&ItemError{Path: rel, Index: index - 1, Err: err})
					continue
				}
				if err := p.add(item); err != nil {
					return err
				}
			}
		case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
			continue
		default:
			p.beginAt(readAt)
			item, err := yamlItem(n)
			index++
			if err != nil {
				p.bad.Add(&ItemError{Path: rel, Index: index - 1, Err: fmt.Errorf("document is neither a list of objects nor an object: %w", err)})
				continue
			}
			if err := p.add(item); err != nil {
				return err
			}
		}
	}
}

// normalizeYAML makes a YAML tree decode as JSON would read it: timestamps stay
// the strings they were written as (instead of time.Time, which would reformat
// them), and scalar mapping keys are strings ("1: x" has key "1"). Aliased
// nodes are normalized where their anchor is defined.
func normalizeYAML(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!timestamp" {
		n.Tag = "!!str"
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 && c.Kind == yaml.ScalarNode {
			if t := c.ShortTag(); t != "!!str" && t != "!!merge" {
				c.Tag = "!!str"
			}
		}
		normalizeYAML(c)
	}
}

// yamlItem converts a YAML mapping node to a JSON object.
func yamlItem(n *yaml.Node) ([]byte, error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("not an object but %s", yamlKind(n))
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, fmt.Errorf("decoding YAML: %w", err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("converting to JSON (mapping keys must be scalars, numbers finite): %w", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// yamlKind names the kind of a YAML node for messages.
func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "an object"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "null"
		}
		return "a scalar (" + strings.TrimPrefix(n.ShortTag(), "!!") + ")"
	}
	return "an alias"
}

// pathlessReader strips paths from read errors (an *os.File names its
// absolute path).
type pathlessReader struct{ r io.Reader }

// Read reads from the underlying reader.
func (r *pathlessReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if err != nil && err != io.EOF {
		err = bareErr(err)
	}
	return n, err
}

// errTooLarge is returned by a capReader past its limit.
var errTooLarge = errors.New("input too large")

// capReader fails with errTooLarge once more than left bytes were read. It
// keeps the error it returned other than io.EOF, so that its user can tell a
// read failure from what a parser made of the bytes.
type capReader struct {
	r    io.Reader
	left int64
	err  error
}

// Read reads from the underlying reader until the cap is passed.
func (c *capReader) Read(b []byte) (int, error) {
	if c.left < 0 {
		c.err = errTooLarge
		return 0, c.err
	}
	if int64(len(b)) > c.left+1 {
		b = b[:c.left+1]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// pager collects items into pages and yields each full page.
type pager struct {
	size     int
	now      func() time.Time
	yield    func(Page) error
	items    [][]byte
	at       time.Time
	yieldErr error // the error yield returned, which Fetch returns as is
	bad      ItemErrors
}

// begin stamps the page about to be filled, if it is empty: a page's FetchedAt
// is when reading of its first item began.
func (p *pager) begin() {
	if len(p.items) == 0 {
		p.at = p.now()
	}
}

// beginAt stamps the page about to be filled with t, if it is empty: for items
// read before they are added (a YAML document is read whole).
func (p *pager) beginAt(t time.Time) {
	if len(p.items) == 0 {
		p.at = t
	}
}

// add appends an item, which the pager now owns, and yields the page if full.
func (p *pager) add(item []byte) error {
	if p.items == nil {
		p.items = make([][]byte, 0, min(p.size, 1024))
	}
	p.items = append(p.items, item)
	if len(p.items) >= p.size {
		return p.flush()
	}
	return nil
}

// flush yields the page, if not empty, and starts a new one.
func (p *pager) flush() error {
	if len(p.items) == 0 {
		return nil
	}
	page := Page{Items: p.items, FetchedAt: p.at}
	p.items = nil
	if err := p.yield(page); err != nil {
		p.yieldErr = err
		return err
	}
	return nil
}

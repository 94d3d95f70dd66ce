package source_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/configsync/configsync/source"
)

// fixture is a directory tree with files and symlinks inside and outside an
// allowed root:
//
//	base/allowed/root/{a.json, sub/b.json}       items {"in":true}
//	base/allowed/root/in_link.json  -> a.json    (inside: fine)
//	base/allowed/root/sub_link      -> sub       (inside: fine)
//	base/allowed/root/abs_link      -> <abs>/root/a.json (inside: fine)
//	base/allowed/root/file_out      -> ../../outside/secret.json
//	base/allowed/root/dir_out       -> ../../outside/dir
//	base/allowed/root/chain         -> sub/../../../outside/secret.json
//	base/allowed/root_out           -> ../outside
//	base/allowed_link               -> allowed
//	base/outside/{secret.json, dir/x.json, in -> ../allowed/root}  items {"outside":true}
type fixture struct {
	base, allowed, root, outside string
}

func newFixture(tb testing.TB) fixture {
	tb.Helper()
	base, err := filepath.EvalSymlinks(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	fx := fixture{
		base:    base,
		allowed: filepath.Join(base, "allowed"),
		root:    filepath.Join(base, "allowed", "root"),
		outside: filepath.Join(base, "outside"),
	}
	in, out := `[{"in":true}]`, `[{"outside":true}]`
	files := map[string]string{
		"allowed/root/a.json": in, "allowed/root/sub/b.json": in, "allowed/a.json": in,
		"outside/secret.json": out, "outside/dir/x.json": out, "outside/x.json": out,
	}
	for name, content := range files {
		p := filepath.Join(base, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	links := [][2]string{
		{"allowed/root/in_link.json", "a.json"},
		{"allowed/root/sub_link", "sub"},
		{"allowed/root/abs_link", filepath.Join(fx.root, "a.json")},
		{"allowed/root/file_out", "../../outside/secret.json"},
		{"allowed/root/dir_out", "../../outside/dir"},
		{"allowed/root/chain", "sub/../../../outside/secret.json"},
		{"allowed/root_out", "../outside"},
		{"allowed_link", "allowed"},
		{"outside/in", "../allowed/root"},
	}
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(base, filepath.FromSlash(l[0]))); err != nil {
			tb.Skipf("symlinks unavailable: %v", err)
		}
	}
	return fx
}

func TestFilePathEscapes(t *testing.T) {
	fx := newFixture(t)
	s, err := newFile(t, []string{fx.allowed}, "root")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		wantIs     error // nil: the fetch must succeed with only inside items
	}{
		{"dotdot", "../x", source.ErrOutsideRoot},
		{"dotdot to a real file", "../a.json", source.ErrOutsideRoot},
		{"dotdot deep", "../../outside/secret.json", source.ErrOutsideRoot},
		{"dotdot after a dir", "sub/../../outside/secret.json", source.ErrOutsideRoot},
		{"dotdot that stays inside", "sub/../a.json", source.ErrOutsideRoot},
		{"dotdot in a glob", "../*.json", source.ErrOutsideRoot},
		{"absolute", "/etc/passwd", source.ErrOutsideRoot},
		{"absolute inside root", filepath.Join(fx.root, "a.json"), source.ErrOutsideRoot},
		{"backslash absolute", `\etc\passwd`, source.ErrOutsideRoot},
		{"symlinked file outside", "file_out", source.ErrOutsideRoot},
		{"symlinked dir outside", "dir_out/x.json", source.ErrOutsideRoot},
		{"glob in symlinked dir outside", "dir_out/*.json", source.ErrOutsideRoot},
		{"glob matching symlinked dir outside", "d*/x.json", source.ErrOutsideRoot},
		{"glob matching symlinked file outside", "*", source.ErrOutsideRoot},
		{"symlink with dotdot inside its target", "chain", source.ErrOutsideRoot},
		{"symlink inside root", "in_link.json", nil},
		{"symlinked dir inside root", "sub_link/b.json", nil},
		{"glob in symlinked dir inside root", "sub_link/*.json", nil},
		{"absolute symlink inside root", "abs_link", nil},
		{"glob of regular files", "*.json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, _, err := fetchAll(t.Context(), s, res("thing", tt.path))
			for _, it := range items {
				if strings.Contains(it, "outside") {
					t.Fatalf("read a file outside root: %s", it)
				}
			}
			if tt.wantIs == nil {
				if err != nil || len(items) == 0 {
					t.Fatalf("Fetch: %d items, %v", len(items), err)
				}
				return
			}
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("error %v, want %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), `kind "thing"`) {
				t.Errorf("error %q does not name the kind", err)
			}
			if !strings.Contains(tt.path, fx.base) && strings.Contains(err.Error(), fx.base) {
				t.Errorf("error %q reveals the server's directories", err)
			}
		})
	}
}

func TestFileRootContainment(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name    string
		allowed []string
		root    string
		wantIs  error  // nil with wantMsg "": New must succeed
		wantMsg string // a part of the error
	}{
		{"relative to the first allowed root", []string{fx.allowed}, "root", nil, ""},
		{"absolute inside", []string{fx.allowed}, fx.root, nil, ""},
		{"the allowed root itself", []string{fx.allowed}, ".", nil, ""},
		{"second allowed root", []string{fx.outside + "/dir", fx.allowed}, fx.root, nil, ""},
		{"allowed root through a symlink", []string{filepath.Join(fx.base, "allowed_link")}, "root", nil, ""},
		{"root through the allowed root's symlink target", []string{filepath.Join(fx.base, "allowed_link")}, fx.root, nil, ""},
		{"symlinked root outside", []string{fx.allowed}, "root_out", source.ErrRootNotAllowed, "through a symlink"},
		{"root outside allowed roots", []string{fx.allowed}, fx.outside, source.ErrRootNotAllowed, ""},
		{"relative root escaping", []string{fx.allowed}, "../outside", source.ErrRootNotAllowed, ""},
		{"root with dotdot normalizing outside", []string{fx.allowed}, "root/../../outside", source.ErrRootNotAllowed, ""},
		{"absolute root with dotdot normalizing outside", []string{fx.allowed}, fx.root + "/../../outside", source.ErrRootNotAllowed, ""},
		{"filesystem root", []string{fx.allowed}, "/", source.ErrRootNotAllowed, ""},
		{"etc", []string{fx.allowed}, "/etc", source.ErrRootNotAllowed, ""},
		{"sibling with a common prefix", []string{fx.root}, fx.root + "_x", source.ErrRootNotAllowed, ""},
		{"outside path that links inside", []string{fx.allowed}, filepath.Join(fx.outside, "in"), source.ErrRootNotAllowed, ""},
		{"missing root", []string{fx.allowed}, "missing", fs.ErrNotExist, `root "missing"`},
		{"missing outside root", []string{fx.allowed}, fx.base + "/nothere", source.ErrRootNotAllowed, ""},
		{"root is a file", []string{fx.allowed}, "root/a.json", nil, "is not a directory"},
		{"no allowed roots", nil, fx.root, nil, "allows no directory"},
		{"empty root", []string{fx.allowed}, "", nil, `"root" is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newFile(t, tt.allowed, tt.root)
			if tt.wantIs == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if _, _, err := fetchAll(t.Context(), s, res("x", "*.json")); err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted the root")
			}
			if s != nil {
				t.Errorf("New returned a non-nil Source (%T) with its error", s)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v, want %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantMsg)
			}
			if !strings.Contains(tt.root, fx.base) && strings.Contains(err.Error(), fx.base) {
				t.Errorf("error %q reveals the server's directories", err)
			}
		})
	}
}

// TestFileRootSwapped checks that containment is checked again at each fetch:
// a root replaced by a symlink to outside after New is refused.
func TestFileRootSwapped(t *testing.T) {
	fx := newFixture(t)
	swap := filepath.Join(fx.allowed, "swap")
	if err := os.Mkdir(swap, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(swap, "x.json"), []byte(`{"in":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := newFile(t, []string{fx.allowed}, "swap")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fetchAll(t.Context(), s, res("x", "")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(swap); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", swap); err != nil {
		t.Fatal(err)
	}
	items, _, err := fetchAll(t.Context(), s, res("x", ""))
	if !errors.Is(err, source.ErrRootNotAllowed) || len(items) != 0 {
		t.Fatalf("after the swap: %v, %v", items, err)
	}
}

func TestCleanRelPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a.json", "a.json"},
		{"./a/./b.json", "a/b.json"},
		{"a//b/", "a/b"},
		{"data/*.json", "data/*.json"},
		{"..a/b..", "..a/b.."},
		{"", ""},
		{".", ""},
		{"./", ""},
		{"..", ""},
		{"a/..", ""},
		{"a/../b", ""},
		{"/a", ""},
		{"//a", ""},
		{`\a`, ""},
		{"a\x00b", ""},
		{"[", ""},
		{"a/[b-/c", ""},
	}
	for _, tt := range tests {
		got, err := source.CleanRelPath(tt.in)
		if (err == nil) != (tt.want != "") || got != tt.want {
			t.Errorf("CleanRelPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzFilePath checks, for any selector path, that the containment check only
// accepts local paths, and that a fetch never reads a file outside root nor
// reveals the server's directories in its error.
func FuzzFilePath(f *testing.F) {
	for _, seed := range []string{
		"a.json", "sub/b.json", "*.json", "*/*", "*", "?", "[a-z]*", "../x", "../../outside/secret.json",
		"sub/../../outside/secret.json", "/etc/passwd", `\etc\passwd`, "file_out", "dir_out/x.json",
		"dir_out/*", "d*/*", "chain", "in_link.json", "sub_link/b.json", "sub_link/../a.json", "./././a.json",
		"sub//b.json", "a.json/", "a.json/.", "sub/./../sub/b.json", "..", ".", "", "\x00", "a\x00/../../x",
		"C:/Windows", `C:\x`, "~/x", "$HOME/x", "%2e%2e/x", "sub\\..\\..\\x", "*/../../*", "[", "\\*",
	} {
		f.Add(seed)
	}
	fx := newFixture(f)
	s, err := source.FileType([]string{fx.allowed}, source.WithPageSize(3)).New(map[string]any{"root": "root"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if c, err := source.CleanRelPath(p); err == nil {
			if !filepath.IsLocal(filepath.FromSlash(c)) || !fs.ValidPath(c) {
				t.Fatalf("CleanRelPath(%q) = %q, not local", p, c)
			}
			for el := range strings.SplitSeq(c, "/") {
				if el == ".." {
					t.Fatalf("CleanRelPath(%q) = %q, has ..", p, c)
				}
			}
			if j := filepath.Join(fx.root, filepath.FromSlash(c)); !strings.HasPrefix(j, fx.root+string(filepath.Separator)) {
				t.Fatalf("CleanRelPath(%q) = %q joins to %q, outside root", p, c, j)
			}
		}
		items, _, err := fetchAll(t.Context(), s, res("k", p))
		for _, it := range items {
			if !strings.Contains(it, `"in":true`) {
				t.Fatalf("path %q read an item from outside root: %s", p, it)
			}
		}
		if err != nil && strings.Contains(err.Error(), fx.base) && !strings.Contains(p, fx.base) {
			t.Fatalf("path %q: error %q reveals the server's directories", p, err)
		}
	})
}

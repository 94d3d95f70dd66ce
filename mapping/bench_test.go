package mapping

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/configsync/configsync/fakegithub"
)

// BenchmarkMapGitHubRepositories maps 200,000 GitHub-like repositories with the
// compat corpus' github `repository` resource on all cores, output encoded, the way
// `configsync map` does. One op is the whole set; items/s is the figure to compare.
func BenchmarkMapGitHubRepositories(b *testing.B) {
	const n = 200_000
	prog := githubProgram(b)
	var input bytes.Buffer
	if err := fakegithub.WriteRepositoriesNDJSON(&input, n, fakegithub.RepositoryOptions{}); err != nil {
		b.Fatal(err)
	}
	items := bytes.Split(bytes.TrimSpace(input.Bytes()), []byte("\n"))
	resources := prog.ResourcesOfKind("repository")
	b.SetBytes(int64(input.Len()))
	b.ResetTimer()
	for range b.N {
		entities := 0
		err := prog.Run(context.Background(), &sliceSource{items: items}, RunOptions{
			Resources: resources,
			Transform: func(r *ItemResult) {
				for i := range r.Entities {
					r.Output = r.Entities[i].AppendJSON(r.Output)
				}
			},
		}, func(r *ItemResult) error {
			entities += len(r.Entities)
			return nil
		})
		if err != nil || entities != n {
			b.Fatalf("%d entities, %v", entities, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
}

type sliceSource struct {
	items [][]byte
	i     int
}

func (s *sliceSource) Next() ([]byte, error) {
	if s.i >= len(s.items) {
		return nil, io.EOF
	}
	s.i++
	return s.items[s.i-1], nil
}

// BenchmarkDecodeGitHubRepository decodes GitHub-like repositories with the need of the
// compat corpus' github `repository` resource, as Map does before evaluating. One op
// is one item; the items cycle through a thousand generated repositories. The slow
// sub-benchmark is the jsontext decoder alone, for comparison.
func BenchmarkDecodeGitHubRepository(b *testing.B) {
	items, n := githubRepositoryItems(b)
	for _, bc := range []struct {
		name   string
		decode func(d *decoder, raw []byte, n *need) (any, error)
	}{
		{"decode", (*decoder).decode},
		{"slow", (*decoder).decodeSlow},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := newDecoder()
			b.ReportAllocs()
			for i := range b.N {
				if _, err := bc.decode(d, items[i%len(items)], n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// githubRepositoryItems returns a thousand generated repositories and the need the
// compat github config's repository resource has for them.
func githubRepositoryItems(b testing.TB) ([][]byte, *need) {
	b.Helper()
	resources := githubProgram(b).ResourcesOfKind("repository")
	if len(resources) != 1 {
		b.Fatalf("%d repository resources, want 1", len(resources))
	}
	var input bytes.Buffer
	if err := fakegithub.WriteRepositoriesNDJSON(&input, 1000, fakegithub.RepositoryOptions{}); err != nil {
		b.Fatal(err)
	}
	return bytes.Split(bytes.TrimSpace(input.Bytes()), []byte("\n")), resources[0].need
}

// githubProgram compiles the compat corpus' github config.
func githubProgram(tb testing.TB) *Program {
	tb.Helper()
	doc, err := os.ReadFile(filepath.Join(compatDir(tb), "github", "port-app-config.yml"))
	if err != nil {
		tb.Fatal(err)
	}
	cfg, ps := Parse(doc)
	prog, cps := Compile(cfg, Options{})
	if prog == nil {
		tb.Fatal(problemText(append(ps, cps...)))
	}
	return prog
}

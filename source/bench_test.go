package source_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/configsync/configsync/source"
)

// BenchmarkFileFetch measures fetching an NDJSON file of 20,000 items of about
// 200 bytes; the bytes/op show that a fetch holds little beyond its items.
func BenchmarkFileFetch(b *testing.B) {
	for _, format := range []string{"ndjson", "yaml"} {
		b.Run(format, func(b *testing.B) {
			dir := b.TempDir()
			var sb strings.Builder
			for i := range 20000 {
				if format == "yaml" {
					fmt.Fprintf(&sb, "- id: svc-%d\n  name: service %d\n  tags: [a, b, c]\n  owner: {team: core, email: x@example.com}\n", i, i)
				} else {
					fmt.Fprintf(&sb, `{"id":"svc-%d","name":"service %d","tags":["a","b","c"],"owner":{"team":"core","email":"x@example.com"},"pad":"%s"}`+"\n", i, i, strings.Repeat("x", 80))
				}
			}
			file := "x.json"
			if format == "yaml" {
				file = "x.yaml"
			}
			writeFiles(b, dir, map[string]string{file: sb.String()})
			s, err := source.FileType([]string{dir}).New(map[string]any{"root": dir}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(sb.Len()))
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				if err := s.Fetch(b.Context(), res("x", file), func(p source.Page) error { n += len(p.Items); return nil }); err != nil || n != 20000 {
					b.Fatal(n, err)
				}
			}
		})
	}
}

package jsonstream

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

func BenchmarkBufSizes(b *testing.B) {
	nd, _ := benchData()
	for _, bs := range []int{16 << 10, 64 << 10, 256 << 10, 1 << 20} {
		b.Run(fmt.Sprint(bs>>10, "K"), func(b *testing.B) {
			b.SetBytes(int64(len(nd)))
			for b.Loop() {
				r := NewReader(bytes.NewReader(nd), Options{BufferSize: bs})
				for {
					if _, err := r.Next(); err == io.EOF {
						break
					}
				}
			}
		})
	}
}
func BenchmarkCalibCopy(b *testing.B) {
	nd, _ := benchData()
	b.SetBytes(int64(len(nd)))
	buf := make([]byte, 1<<20)
	for b.Loop() {
		r := bytes.NewReader(nd)
		for {
			n, _ := r.Read(buf)
			if n == 0 {
				break
			}
		}
	}
}
func TestCalibStats(t *testing.T) {
	nd, _ := benchData()
	items := bytes.Count(nd, []byte("\n"))
	t.Logf("items %d, quotes/item %.1f, backslashes/item %.1f, brackets/item %.1f",
		items, float64(bytes.Count(nd, []byte(`"`)))/float64(items), float64(bytes.Count(nd, []byte(`\`)))/float64(items),
		float64(bytes.Count(nd, []byte(`{`))+bytes.Count(nd, []byte(`[`)))/float64(items))
	t.Logf("%s", nd[:2000])
}
func BenchmarkLongString(b *testing.B) {
	in := []byte(`"` + string(bytes.Repeat([]byte("abcdefgh"), 1<<20)) + `"`)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r := NewReader(bytes.NewReader(in), Options{})
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			}
		}
	}
}

var sink int

func BenchmarkRawLoops(b *testing.B) {
	in := bytes.Repeat([]byte("abcdefgh"), 1<<20)
	b.Run("byteloop", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			n := 0
			for _, c := range in {
				if c == '"' || c == '\\' || c == '\n' {
					n++
				}
			}
			sink = n
		}
	})
	b.Run("indexInString", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			sink, _ = scanString(in, 0)
		}
	})
	b.Run("indexByte", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			sink = bytes.IndexByte(in, '"')
		}
	})
}

package jsonstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// benchTarget is the size of generated benchmark input.
const benchTarget = 50 << 20

type benchOwner struct {
	Login     string `json:"login"`
	ID        int64  `json:"id"`
	NodeID    string `json:"node_id"`
	AvatarURL string `json:"avatar_url"`
	URL       string `json:"url"`
	HTMLURL   string `json:"html_url"`
	ReposURL  string `json:"repos_url"`
	Type      string `json:"type"`
	SiteAdmin bool   `json:"site_admin"`
}

type benchRepo struct {
	ID            int64      `json:"id"`
	NodeID        string     `json:"node_id"`
	Name          string     `json:"name"`
	FullName      string     `json:"full_name"`
	Private       bool       `json:"private"`
	Owner         benchOwner `json:"owner"`
	HTMLURL       string     `json:"html_url"`
	Description   string     `json:"description"`
	Fork          bool       `json:"fork"`
	URL           string     `json:"url"`
	CloneURL      string     `json:"clone_url"`
	Homepage      *string    `json:"homepage"`
	Size          int        `json:"size"`
	Stars         int        `json:"stargazers_count"`
	Watchers      int        `json:"watchers_count"`
	Language      string     `json:"language"`
	HasIssues     bool       `json:"has_issues"`
	Forks         int        `json:"forks_count"`
	OpenIssues    int        `json:"open_issues_count"`
	DefaultBranch string     `json:"default_branch"`
	Topics        []string   `json:"topics"`
	Score         float64    `json:"score"`
	CreatedAt     string     `json:"created_at"`
	UpdatedAt     string     `json:"updated_at"`
	PushedAt      string     `json:"pushed_at"`
	License       *struct {
		Key    string `json:"key"`
		Name   string `json:"name"`
		SpdxID string `json:"spdx_id"`
	} `json:"license"`
	Readme string `json:"readme_excerpt"`
}

var benchData = sync.OnceValues(func() (ndjson, array []byte) {
	rng := rand.New(rand.NewPCG(7, 7))
	words := strings.Fields(`the quick brown fox jumps over lazy dog config sync "quoted" <tag> a&b
		C:\path\to\file tab	here naïve café 日本語 emoji😀 [brackets] {braces} back\slash`)
	sentence := func(n int) string {
		var sb strings.Builder
		for i := range n {
			if i > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(words[rng.IntN(len(words))])
		}
		if rng.IntN(3) == 0 {
			sb.WriteString("\nsecond line\n")
		}
		return sb.String()
	}
	var nd, arr bytes.Buffer
	arr.WriteByte('[')
	for i := 0; nd.Len() < benchTarget; i++ {
		login := fmt.Sprintf("user%d", rng.IntN(1e6))
		name := fmt.Sprintf("repo-%d", i)
		api := "https://api.github.com/repos/" + login + "/" + name
		r := benchRepo{
			ID: int64(1e8 + i), NodeID: fmt.Sprintf("MDEwOlJlcG9zaXRvcnk%d", i), Name: name, FullName: login + "/" + name,
			Owner: benchOwner{Login: login, ID: rng.Int64N(1e8), NodeID: "MDQ6VXNlcj" + login,
				AvatarURL: "https://avatars.githubusercontent.com/u/" + login + "?v=4", URL: "https://api.github.com/users/" + login,
				HTMLURL: "https://github.com/" + login, ReposURL: "https://api.github.com/users/" + login + "/repos", Type: "User"},
			HTMLURL: "https://github.com/" + login + "/" + name, Description: sentence(12), URL: api,
			CloneURL: "https://github.com/" + login + "/" + name + ".git", Size: rng.IntN(1e6), Stars: rng.IntN(1e5),
			Watchers: rng.IntN(1e5), Language: []string{"Go", "Rust", "C++", "TypeScript"}[rng.IntN(4)], HasIssues: true,
			Forks: rng.IntN(1e4), OpenIssues: rng.IntN(1e3), DefaultBranch: "main",
			Topics: strings.Fields(sentence(5)), Score: rng.Float64() * 100,
			CreatedAt: "2019-05-01T12:34:56Z", UpdatedAt: "2024-11-02T01:02:03Z", PushedAt: "2024-11-02T01:02:03Z",
			Readme: sentence(90),
		}
		if rng.IntN(2) == 0 {
			r.License = &struct {
				Key    string `json:"key"`
				Name   string `json:"name"`
				SpdxID string `json:"spdx_id"`
			}{"mit", "MIT License", "MIT"}
		}
		b, err := json.Marshal(r)
		if err != nil {
			panic(err)
		}
		nd.Write(b)
		nd.WriteByte('\n')
		if i > 0 {
			arr.WriteString(",\n")
		}
		arr.Write(b)
	}
	arr.WriteString("]\n")
	return nd.Bytes(), arr.Bytes()
})

func benchmarkReader(b *testing.B, data []byte, wantFormat Format) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var items int
	for b.Loop() {
		r := NewReader(bytes.NewReader(data), Options{})
		items = 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			items++
		}
		if r.Format() != wantFormat {
			b.Fatalf("Format = %v", r.Format())
		}
	}
	b.ReportMetric(float64(len(data))/float64(items), "B/item")
}

func BenchmarkNDJSON(b *testing.B) {
	nd, _ := benchData()
	benchmarkReader(b, nd, Sequence)
}

func BenchmarkArray(b *testing.B) {
	_, arr := benchData()
	benchmarkReader(b, arr, Array)
}

// BenchmarkDecoderBaseline is for comparison only: encoding/json.Decoder
// splitting the same NDJSON into json.RawMessage (which also validates).
func BenchmarkDecoderBaseline(b *testing.B) {
	nd, _ := benchData()
	b.SetBytes(int64(len(nd)))
	for b.Loop() {
		dec := json.NewDecoder(bytes.NewReader(nd))
		for {
			var m json.RawMessage
			if err := dec.Decode(&m); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestBenchDataValid makes sure the benchmark input is what it claims: the
// Reader agrees with encoding/json on it.
func TestBenchDataValid(t *testing.T) {
	if testing.Short() {
		t.Skip("large input")
	}
	nd, arr := benchData()
	// Cut both at an item boundary so they stay complete inputs.
	ndHead := nd[:bytes.LastIndex(nd[:1<<20], []byte("}\n"))+2]
	arrHead := append(bytes.Clone(arr[:bytes.LastIndex(arr[:1<<20], []byte("},\n"))+1]), ']')
	for _, in := range [][]byte{ndHead, arrHead} {
		want, _, ok := decodeAll(in)
		if !ok {
			t.Fatalf("benchmark data rejected by encoding/json")
		}
		got := collect(t, NewReader(bytes.NewReader(in), Options{}), len(in))
		if err := compareValues(got, want); err != nil {
			t.Fatal(err)
		}
	}
}

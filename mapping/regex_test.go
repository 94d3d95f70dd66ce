package mapping

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/itchyny/gojq"
)

func TestRegexOracleScratch(t *testing.T) {
	path := os.Getenv("REGEX_ORACLE")
	if path == "" {
		t.Skip()
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := newRegexEngine(time.Second)
	out, _ := os.Create(os.Getenv("REGEX_ORACLE_OUT"))
	defer out.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		tab := strings.IndexByte(line, '\t')
		input, expr := line[:tab], line[tab+1:]
		rec := map[string]any{"input": input, "expr": expr}
		var v any
		if err := json.Unmarshal([]byte(input), &v); err != nil {
			t.Fatal(err)
		}
		q, err := gojq.Parse(expr)
		if err != nil {
			rec["err"] = err.Error()
		} else {
			q.FuncDefs = append(e.prelude(), q.FuncDefs...)
			code, err := gojq.Compile(q, e.compilerOptions()...)
			if err != nil {
				rec["err"] = err.Error()
			} else {
				var outs []string
				iter := code.Run(v)
				for {
					x, ok := iter.Next()
					if !ok {
						break
					}
					if err, ok := x.(error); ok {
						rec["err"] = err.Error()
						break
					}
					b, _ := gojq.Marshal(x)
					outs = append(outs, string(b))
				}
				if _, bad := rec["err"]; !bad {
					rec["out"] = strings.Join(outs, "\n")
				}
			}
		}
		b, _ := json.Marshal(rec)
		out.Write(append(b, '\n'))
	}
}

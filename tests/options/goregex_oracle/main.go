// Command goregex_oracle answers, with Go's own regexp package, what gor would do with a
// pattern: whether it compiles, whether it matches a subject, and what ReplaceAll gives.
// The options tests run it (when a Go toolchain is installed) to check our RE2 emulation.
//
// Input: one JSON object per line, {"pattern": "...", "template": B64, "subject": B64}.
// Output: one JSON object per line, {"error": "...", "match": bool, "replaced": B64}.
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
)

type query struct {
	Pattern  string `json:"pattern"`
	Template []byte `json:"template"`
	Subject  []byte `json:"subject"`
}

type answer struct {
	Error    string `json:"error"`
	Match    bool   `json:"match"`
	Replaced []byte `json:"replaced"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var q query
		if err := json.Unmarshal(in.Bytes(), &q); err != nil {
			panic(err)
		}
		var a answer
		re, err := regexp.Compile(q.Pattern)
		if err != nil {
			a.Error = err.Error()
		} else {
			a.Match = re.Match(q.Subject)
			a.Replaced = re.ReplaceAll(q.Subject, q.Template)
		}
		if err := out.Encode(a); err != nil {
			panic(err)
		}
	}
}

package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// parser walks a yaml.Node tree and collects every problem with its line,
// rather than stopping at the first, so one run of `pspguard rules validate`
// shows everything there is to fix.
type parser struct {
	file  string
	probs Problems
}

func (p *parser) add(line int, field, format string, args ...any) {
	p.probs = append(p.probs, Problem{File: p.file, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) addAt(n *yaml.Node, field, format string, args ...any) {
	p.add(n.Line, field, format, args...)
}

// err returns the problems sorted by line, or nil when there are none.
func (p *parser) err() error {
	if len(p.probs) == 0 {
		return nil
	}
	sort.SliceStable(p.probs, func(i, j int) bool { return p.probs[i].Line < p.probs[j].Line })
	return &p.probs
}

// document parses data as exactly one YAML document and returns its root
// node, or nil after recording why there is none.
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(0, "", "the file is empty")
		} else {
			p.syntax(err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		p.add(next.Line, "", "a second YAML document (after ---); the file must hold exactly one")
		return nil
	case !errors.Is(err, io.EOF):
		p.syntax(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.add(0, "", "the file is empty")
		return nil
	}
	return resolve(doc.Content[0])
}

// syntax records a YAML syntax error. yaml.v3 reports them as
// "yaml: line N: message"; the line is lifted into the Problem.
func (p *parser) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, text
			}
		}
	}
	p.add(line, "", "invalid YAML: %s", msg)
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is an explicit or implied null (`key:` alone).
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "must be X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "empty"
		case "!!bool":
			return "true/false"
		case "!!int", "!!float":
			return "a number"
		case "!!timestamp":
			return "a date"
		}
		return "a string"
	}
	return "something else"
}

// field joins a dotted field path.
func field(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// entry is one key and value of a mapping.
type entry struct {
	key   string
	k, v  *yaml.Node
	field string
}

// mapping checks that n is a mapping whose keys are strings, each present
// once, and returns its entries in order. A null value is an empty mapping
// when nullOK. known, if not nil, lists the only keys allowed.
func (p *parser) mapping(n *yaml.Node, at string, nullOK bool, known ...string) ([]entry, bool) {
	if nullOK && isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		p.addAt(n, at, "must be a mapping (key: value lines), not %s", describe(n))
		return nil, false
	}
	seen := make(map[string]int, len(n.Content)/2)
	entries := make([]entry, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || isNull(k) {
			p.addAt(k, at, "keys must be names, not %s", describe(k))
			continue
		}
		name := k.Value
		f := field(at, name)
		if first, dup := seen[name]; dup {
			p.addAt(k, f, "duplicate key (first on line %d)", first)
			continue
		}
		seen[name] = k.Line
		if known != nil && !contains(known, name) {
			p.addAt(k, f, "unknown key (known here: %s)", strings.Join(known, ", "))
			continue
		}
		entries = append(entries, entry{key: name, k: k, v: v, field: f})
	}
	return entries, true
}

// list checks that n is a list and returns its items.
func (p *parser) list(n *yaml.Node, at, what string) ([]*yaml.Node, bool) {
	if n.Kind != yaml.SequenceNode {
		p.addAt(n, at, "must be a list of %s, e.g. [a, b], not %s", what, describe(n))
		return nil, false
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		items[i] = resolve(c)
	}
	return items, true
}

// str checks that n is a non-empty plain string.
func (p *parser) str(n *yaml.Node, at, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.addAt(n, at, "must be %s, not %s", what, describe(n))
		return "", false
	}
	if strings.TrimSpace(n.Value) == "" {
		p.addAt(n, at, "must be %s, not empty", what)
		return "", false
	}
	return n.Value, true
}

// date reads a calendar date written YYYY-MM-DD, quoted or not.
func (p *parser) date(n *yaml.Node, at string) (time.Time, bool) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!timestamp" && n.ShortTag() != "!!str") {
		p.addAt(n, at, "must be a date written YYYY-MM-DD, not %s", describe(n))
		return time.Time{}, false
	}
	d, err := parseDate(n.Value)
	if err != nil {
		p.addAt(n, at, "%v", err)
		return time.Time{}, false
	}
	return d, true
}

// parseDate reads exactly YYYY-MM-DD as midnight UTC. Looser spellings
// (2027-6-30, 30/06/2027, a time of day) are refused: a compliance date
// must not depend on how a parser guesses.
func parseDate(s string) (time.Time, error) {
	if len(s) != len("2006-01-02") || s[4] != '-' || s[7] != '-' || !digits(s[:4]) || !digits(s[5:7]) || !digits(s[8:]) {
		return time.Time{}, fmt.Errorf("%q is not a date written YYYY-MM-DD", s)
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a calendar date", s)
	}
	return d, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

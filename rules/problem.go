package rules

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong in a rules or cases file, located by line.
type Problem struct {
	File    string // the file name as given to Load or Parse
	Line    int    // 1-based; 0 when the problem concerns the whole file
	Field   string // dotted path of the offending key, e.g. merchants.shoeshop.category; may be empty
	Message string
}

// String formats p the way compilers do, so editors can jump to it:
//
//	rules.yaml:12: merchants.shoeshop.category: unknown category "phyiscal_goods" (known: ...)
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in a file, in line order. Load, Parse,
// LoadCases and ParseCases return it as a *Problems error; take it apart
// with errors.As.
type Problems []Problem

// Error lists the problems one per line.
func (ps *Problems) Error() string {
	lines := make([]string, len(*ps))
	for i, p := range *ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

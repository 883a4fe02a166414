package psp

import (
	"fmt"
	"slices"
	"strings"
)

// Default is the dialect a configuration that names none gets.
const Default = "klarna"

// dialects holds every dialect by name; each dialect's file registers its
// own, so that adding a PSP touches no other file.
var dialects = map[string]Dialect{}

// register adds d under its name. It is called from the package's
// variable initialisation, before any Lookup.
func register(d Dialect) Dialect {
	if _, dup := dialects[d.Name()]; dup {
		panic("psp: dialect " + d.Name() + " registered twice")
	}
	dialects[d.Name()] = d
	return d
}

// Lookup returns the dialect named name, as a configuration names it.
func Lookup(name string) (Dialect, bool) {
	d, ok := dialects[name]
	return d, ok
}

// Names lists the dialects' names: Default first, then the others in
// alphabetical order.
func Names() []string {
	out := make([]string, 0, len(dialects))
	for name := range dialects {
		if name != Default {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return append([]string{Default}, out...)
}

// NamesText lists the dialects' names for an error message: "a or b",
// "a, b or c".
func NamesText() string {
	n := Names()
	if len(n) == 1 {
		return n[0]
	}
	return strings.Join(n[:len(n)-1], ", ") + " or " + n[len(n)-1]
}

// ByName returns the dialect named in the configuration, or an error that
// lists the names there are.
func ByName(name string) (Dialect, error) {
	if d, ok := Lookup(name); ok {
		return d, nil
	}
	return nil, fmt.Errorf("unknown PSP %q: want %s", name, NamesText())
}

package psp

import "fmt"

// ByName returns the dialect named in the configuration: "klarna" or
// "hellgate".
func ByName(name string) (Dialect, error) {
	switch name {
	case "klarna":
		return Klarna(), nil
	case "hellgate":
		return Hellgate(), nil
	}
	return nil, fmt.Errorf("unknown PSP %q: want klarna or hellgate", name)
}

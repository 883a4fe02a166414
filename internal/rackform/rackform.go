// Package rackform reads application/x-www-form-urlencoded text the way
// Rack's Rack::QueryParser#parse_nested_query does (rack/lib/rack/
// query_parser.rb, Rack 3; https://github.com/rack/rack), the lenient
// reader Stripe's API is built on: fields split on '&' (older Rack also on
// ';') and any spaces after it, each split on its first '=', '+' and %XX
// unescaped (a bad escape kept as written), later scalar keys winning,
// "[]" appending to an array, brackets nesting hashes.
//
// It is the reader the simulator reads Stripe bodies with, as the real PSP
// would, and the lenient reader internal/formstrict is fuzzed against.
package rackform

import (
	"errors"
	"regexp"
	"strings"
)

// Array is a Ruby Array: appended to in place.
type Array struct{ Elems []any }

// paramsDepthLimit is Rack's DEFAULT_PARAM_DEPTH_LIMIT.
const paramsDepthLimit = 32

// separators are Rack 3's separator for bodies and older Rack's
// DEFAULT_SEP.
var separators = map[string]*regexp.Regexp{"&": regexp.MustCompile(`& *`), "&;": regexp.MustCompile(`[&;] *`)}

var pathSplit = regexp.MustCompile(`[\[\]]+`)

var errParameterType = errors.New("Rack::QueryParser::ParameterTypeError")

// Parse reads qs as parse_nested_query does, with seps the separators:
// "&" (Rack 3's, for bodies) or "&;" (older Rack's). Values are strings,
// nil (a field without '='), *Array or map[string]any. The errors are
// Rack's: a path that is a value in one field and a hash or an array in
// another, in that order, or a key nested deeper than Rack allows.
func Parse(qs, seps string) (map[string]any, error) {
	params := map[string]any{}
	if qs == "" {
		return params, nil
	}
	for _, p := range rubySplit(separators[seps], qs) {
		var k, v *string
		if p != "" {
			kk, vv, ok := strings.Cut(p, "=")
			kk = unescape(kk)
			k = &kk
			if ok {
				vv = unescape(vv)
				v = &vv
			}
		}
		if _, err := normalize(params, k, v, 0); err != nil {
			return nil, err
		}
	}
	return params, nil
}

// rubySplit is String#split with a regexp: trailing empty strings dropped.
func rubySplit(re *regexp.Regexp, s string) []string {
	parts := re.Split(s, -1)
	for len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return parts
}

// unescape is URI.decode_www_form_component without its error on a bad
// escape, which is kept as it is: '+' is a space, %XX a byte.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func value(v *string) any {
	if v == nil {
		return nil
	}
	return *v
}

// normalize is _normalize_params.
func normalize(params map[string]any, name, v *string, depth int) (any, error) {
	if depth >= paramsDepthLimit {
		return nil, errors.New("Rack::QueryParser::ParamsTooDeepError")
	}
	var k, after string
	switch n := name; {
	case n == nil:
		k, after = "", ""
	case depth == 0:
		if start := strings.IndexByte(safeFrom(*n, 1), '['); start >= 0 {
			start++
			k, after = (*n)[:start], (*n)[start:]
		} else {
			k, after = *n, ""
		}
	case strings.HasPrefix(*n, "[]"):
		k, after = "[]", (*n)[2:]
	case strings.HasPrefix(*n, "[") && strings.IndexByte(safeFrom(*n, 1), ']') >= 0:
		start := strings.IndexByte((*n)[1:], ']') + 1
		k, after = (*n)[1:start], (*n)[start+1:]
	default:
		k, after = *n, ""
	}
	if k == "" {
		return params, nil
	}
	switch {
	case after == "":
		if k == "[]" && depth != 0 {
			return &Array{Elems: []any{value(v)}}, nil
		}
		params[k] = value(v)
	case after == "[":
		params[*name] = value(v)
	case after == "[]":
		arr, err := arrayAt(params, k)
		if err != nil {
			return nil, err
		}
		arr.Elems = append(arr.Elems, value(v))
	case strings.HasPrefix(after, "[]"):
		// x[][y]: a hash inside an array.
		childKey := ""
		if len(after) > 3 && after[2] == '[' && strings.HasSuffix(after, "]") {
			childKey = after[3 : len(after)-1]
		}
		if childKey == "" || strings.ContainsAny(childKey, "[]") {
			childKey = after[2:]
		}
		arr, err := arrayAt(params, k)
		if err != nil {
			return nil, err
		}
		var last map[string]any
		if len(arr.Elems) > 0 {
			last, _ = arr.Elems[len(arr.Elems)-1].(map[string]any)
		}
		if last != nil && !hasKey(last, childKey) {
			if _, err := normalize(last, &childKey, v, depth+1); err != nil {
				return nil, err
			}
		} else {
			h, err := normalize(map[string]any{}, &childKey, v, depth+1)
			if err != nil {
				return nil, err
			}
			arr.Elems = append(arr.Elems, h)
		}
	default:
		if cur, ok := params[k]; !ok || cur == nil {
			params[k] = map[string]any{}
		}
		h, ok := params[k].(map[string]any)
		if !ok {
			return nil, errParameterType
		}
		r, err := normalize(h, &after, v, depth+1)
		if err != nil {
			return nil, err
		}
		params[k] = r
	}
	return params, nil
}

// arrayAt is `params[k] ||= []` and the type check after it.
func arrayAt(params map[string]any, k string) (*Array, error) {
	if cur, ok := params[k]; !ok || cur == nil {
		params[k] = &Array{}
	}
	arr, ok := params[k].(*Array)
	if !ok {
		return nil, errParameterType
	}
	return arr, nil
}

// hasKey is params_hash_has_key?.
func hasKey(h map[string]any, key string) bool {
	if strings.Contains(key, "[]") {
		return false
	}
	var cur any = h
	for _, part := range pathSplit.Split(key, -1) {
		if part == "" {
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// safeFrom is s[i:], or "" when s is shorter.
func safeFrom(s string, i int) string {
	if i > len(s) {
		return ""
	}
	return s[i:]
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// Lookup follows a key's bracket path (name[a][b]) through hashes, and
// returns nil if it leads nowhere.
func Lookup(params map[string]any, path ...string) any {
	var cur any = params
	for _, seg := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[seg]
	}
	return cur
}

// String is the string at path, and whether there is one.
func String(params map[string]any, path ...string) (string, bool) {
	s, ok := Lookup(params, path...).(string)
	return s, ok
}

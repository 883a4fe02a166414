package formstrict

import (
	"errors"
	"regexp"
	"strings"
)

// This file is a port of Rack's Rack::QueryParser#parse_nested_query
// (rack/lib/rack/query_parser.rb, Rack 3), the lenient reader Stripe's API
// is built on. Parse must never accept a body this reader reads otherwise.

// rackArray is a Ruby Array: appended to in place.
type rackArray struct{ elems []any }

// rackParamsDepthLimit is Rack's DEFAULT_PARAM_DEPTH_LIMIT.
const rackParamsDepthLimit = 32

// rackSeparators are Rack 3's separator for bodies and older Rack's
// DEFAULT_SEP.
var rackSeparators = map[string]*regexp.Regexp{"&": regexp.MustCompile(`& *`), "&;": regexp.MustCompile(`[&;] *`)}

var rackPathSplit = regexp.MustCompile(`[\[\]]+`)

var errRackParameterType = errors.New("Rack::QueryParser::ParameterTypeError")

// rackParse reads qs as parse_nested_query does: fields split on the
// separator characters seps followed by any spaces (Rack 3 splits bodies on
// "&", older Rack on "&;"), each split on its first '=' and unescaped
// leniently, later scalar keys winning, "[]" appending, brackets nesting
// hashes. Values are strings, nil (a field without '='), *rackArray or
// map[string]any.
func rackParse(qs, seps string) (map[string]any, error) {
	params := map[string]any{}
	if qs == "" {
		return params, nil
	}
	for _, p := range rubySplit(rackSeparators[seps], qs) {
		var k, v *string
		if p != "" {
			kk, vv, ok := strings.Cut(p, "=")
			kk = rackUnescape(kk)
			k = &kk
			if ok {
				vv = rackUnescape(vv)
				v = &vv
			}
		}
		if _, err := rackNormalize(params, k, v, 0); err != nil {
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

// rackUnescape is URI.decode_www_form_component without its error on a bad
// escape, which is kept as it is: '+' is a space, %XX a byte.
func rackUnescape(s string) string {
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

func rackValue(v *string) any {
	if v == nil {
		return nil
	}
	return *v
}

// rackNormalize is _normalize_params.
func rackNormalize(params map[string]any, name, v *string, depth int) (any, error) {
	if depth >= rackParamsDepthLimit {
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
			return &rackArray{elems: []any{rackValue(v)}}, nil
		}
		params[k] = rackValue(v)
	case after == "[":
		params[*name] = rackValue(v)
	case after == "[]":
		arr, err := rackArrayAt(params, k)
		if err != nil {
			return nil, err
		}
		arr.elems = append(arr.elems, rackValue(v))
	case strings.HasPrefix(after, "[]"):
		// x[][y]: a hash inside an array.
		childKey := ""
		if len(after) > 3 && after[2] == '[' && strings.HasSuffix(after, "]") {
			childKey = after[3 : len(after)-1]
		}
		if childKey == "" || strings.ContainsAny(childKey, "[]") {
			childKey = after[2:]
		}
		arr, err := rackArrayAt(params, k)
		if err != nil {
			return nil, err
		}
		var last map[string]any
		if len(arr.elems) > 0 {
			last, _ = arr.elems[len(arr.elems)-1].(map[string]any)
		}
		if last != nil && !rackHasKey(last, childKey) {
			if _, err := rackNormalize(last, &childKey, v, depth+1); err != nil {
				return nil, err
			}
		} else {
			h, err := rackNormalize(map[string]any{}, &childKey, v, depth+1)
			if err != nil {
				return nil, err
			}
			arr.elems = append(arr.elems, h)
		}
	default:
		if cur, ok := params[k]; !ok || cur == nil {
			params[k] = map[string]any{}
		}
		h, ok := params[k].(map[string]any)
		if !ok {
			return nil, errRackParameterType
		}
		r, err := rackNormalize(h, &after, v, depth+1)
		if err != nil {
			return nil, err
		}
		params[k] = r
	}
	return params, nil
}

// rackArrayAt is `params[k] ||= []` and the type check after it.
func rackArrayAt(params map[string]any, k string) (*rackArray, error) {
	if cur, ok := params[k]; !ok || cur == nil {
		params[k] = &rackArray{}
	}
	arr, ok := params[k].(*rackArray)
	if !ok {
		return nil, errRackParameterType
	}
	return arr, nil
}

// rackHasKey is params_hash_has_key?.
func rackHasKey(h map[string]any, key string) bool {
	if strings.Contains(key, "[]") {
		return false
	}
	var cur any = h
	for _, part := range rackPathSplit.Split(key, -1) {
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

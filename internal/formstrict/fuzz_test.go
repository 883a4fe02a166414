package formstrict

import (
	"strings"
	"testing"

	"github.com/pspguard/pspguard/internal/rackform"
)

// FuzzParse checks that whatever Parse accepts, Rack's parse_nested_query
// (as Rack 3 splits bodies, on '&', and as older Rack did, on '&' and ';')
// accepts too and reads exactly the same value for every key, and nothing
// more.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"amount=2000&currency=eur&capture_method=manual",
		"payment_method_types[]=card&payment_method_types[]=klarna&expand[]=latest_charge",
		"payment_method_options[card][capture_method]=manual&metadata[order]=A+1%2B2",
		"payment_intent_data[capture_method]=automatic&line_items[0][price]=price_1&line_items[0][quantity]=2",
		"a=1&a=2",
		"a=1&a[b]=2",
		"a[b]=2&a=1",
		"a[b]=1&a[b][]=2",
		"a[b][]=2&a[b]=1",
		"a[]=1&a=2",
		"a[]=1&a[b]=2",
		"a[=1",
		"a]b=1",
		"a[b]c=1",
		"[a]=1",
		"=1",
		"a[][b]=1&a[][c]=2",
		"a%5Bb%5D=1&a[b]=2",
		"a%26b=1",
		"a%3Db=1",
		"capture_method=manual;capture_method=automatic",
		"capture_method=manual&%63apture_method=automatic",
		"a=%zz",
		"a=%ff",
		"a=%00",
		"a=b=c",
		"a=1& b=2",
		"a=x+y&b=x%20y",
		"a&b=1",
		"a=1&&b=2",
		"a=1&",
		"a[b][c][d][e][f][g][h][i][j][k][l][m][n][o][p][q][r]=1",
		"metadata[k]=%E2%82%AC&description=line%0Abreak",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		form, err := Parse(data, nil)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T, want *Error", err)
			}
			return
		}
		for _, seps := range []string{"&", "&;"} {
			params, err := rackform.Parse(string(data), seps)
			if err != nil {
				t.Fatalf("accepted, but Rack (splitting on %q) refuses: %v", seps, err)
			}
			compareRack(t, &form, params, seps)
		}
	})
}

// compareRack checks that Rack's reading holds exactly the fields of form.
func compareRack(t *testing.T, form *Form, params map[string]any, seps string) {
	t.Helper()
	for i := 0; i < form.Len(); i++ {
		key := form.Key(i)
		if array, ok := strings.CutSuffix(key, "[]"); ok {
			arr, ok := rackLookup(params, array).(*rackform.Array)
			if !ok {
				t.Fatalf("%q: Rack (%q) reads no array", key, seps)
			}
			var want []string
			form.Values(key, func(v string) { want = append(want, v) })
			if len(arr.Elems) != len(want) {
				t.Fatalf("%q: %d values, Rack (%q) reads %d", key, len(want), seps, len(arr.Elems))
			}
			for j, e := range arr.Elems {
				if s, ok := e.(string); !ok || s != want[j] {
					t.Fatalf("%q[%d]: %q, Rack (%q) reads %#v", key, j, want[j], seps, e)
				}
			}
			continue
		}
		got := rackLookup(params, key)
		if s, ok := got.(string); !ok || s != form.Value(i) {
			t.Fatalf("%q: %q, Rack (%q) reads %#v", key, form.Value(i), seps, got)
		}
	}
	if n := rackLeaves(params); n != form.Len() {
		t.Fatalf("%d fields, Rack (%q) reads %d values", form.Len(), seps, n)
	}
}

// rackLookup follows a checked key's segments through Rack's hashes.
func rackLookup(params map[string]any, key string) any {
	var cur any = params
	for i := 0; i < len(key); {
		var seg string
		seg, i = nextSeg(key, i)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[seg]
	}
	return cur
}

// rackLeaves counts the values (strings and nils) in Rack's reading.
func rackLeaves(v any) int {
	switch v := v.(type) {
	case map[string]any:
		n := 0
		for _, e := range v {
			n += rackLeaves(e)
		}
		return n
	case *rackform.Array:
		n := 0
		for _, e := range v.Elems {
			n += rackLeaves(e)
		}
		return n
	}
	return 1
}

package caddymodule

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// TestShippedCaddyfiles checks every Caddyfile a user may copy: the ones in
// the repository (./Caddyfile, testdata) and every ```caddyfile block of the
// Markdown docs. Each must be what `caddy fmt` writes, and must adapt
// without an error or a warning. Adapting does not open the rules file (the
// handler reads it when it is provisioned), so example paths can stay.
func TestShippedCaddyfiles(t *testing.T) {
	files := shippedCaddyfiles(t, "..")
	for _, want := range []string{"Caddyfile", "README.md#1"} {
		if !slices.ContainsFunc(files, func(f caddyfileText) bool { return f.name == want }) {
			t.Fatalf("%s not among the Caddyfiles found", want)
		}
	}
	adapter := caddyfile.Adapter{ServerType: httpcaddyfile.ServerType{}}
	for _, f := range files {
		t.Run(f.name, func(t *testing.T) {
			if got := caddyfile.Format(f.text); !bytes.Equal(got, f.text) {
				t.Errorf("not as caddy fmt writes it; caddy fmt gives:\n%s", got)
			}
			body := f.text
			if isDirectiveFragment(body) {
				// A fragment of a site block: adapt it inside one.
				body = []byte(":8080 {\n\t" + strings.ReplaceAll(string(bytes.TrimSpace(body)), "\n", "\n\t") + "\n}\n")
			}
			js, warnings, err := adapter.Adapt(body, map[string]any{"filename": f.name})
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			if f.name == "README.md#1" && bytes.Contains(js, []byte("require_key")) {
				// The reference example shows the defaults; require_key
				// is a flag, so listing it would turn it on.
				t.Errorf("the README's reference example turns require_key on")
			}
			for _, w := range warnings {
				if strings.Contains(w.Message, "not formatted") {
					continue // reported above, with the formatted text
				}
				t.Errorf("adapting: warning: line %d: %s: %s", w.Line, w.Directive, w.Message)
			}
		})
	}
}

type caddyfileText struct {
	name string // the file, and for Markdown "#n": its n-th caddyfile block
	text []byte
}

// caddyfileBlock is a fenced caddyfile code block, indented or not.
var caddyfileBlock = regexp.MustCompile("(?ms)^( *)```caddyfile\n(.*?)^ *```")

// shippedCaddyfiles finds the Caddyfiles under root: files named Caddyfile
// or *.caddyfile, the Caddyfile half of *.caddyfiletest golden files, and
// the caddyfile code blocks of *.md files.
func shippedCaddyfiles(t *testing.T, root string) []caddyfileText {
	t.Helper()
	var out []caddyfileText
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		base := d.Name()
		isCaddyfile := base == "Caddyfile" || strings.HasSuffix(base, ".caddyfile")
		if !isCaddyfile && !strings.HasSuffix(base, ".caddyfiletest") && !strings.HasSuffix(base, ".md") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case isCaddyfile:
			out = append(out, caddyfileText{name, data})
		case strings.HasSuffix(base, ".caddyfiletest"):
			text, _, _ := bytes.Cut(data, []byte("----------"))
			out = append(out, caddyfileText{name, text})
		default:
			for i, m := range caddyfileBlock.FindAllSubmatch(data, -1) {
				// A block in a list item is indented as the fence is.
				text := bytes.ReplaceAll(m[2], []byte("\n"+string(m[1])), []byte("\n"))
				text = bytes.TrimPrefix(text, m[1])
				out = append(out, caddyfileText{name + "#" + strconv.Itoa(i+1), text})
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// directiveName is how a fragment of a site block starts: with a directive
// (psp_guard, log) rather than a site address (:8080, example.com,
// http://...) or the global options ("{").
var directiveName = regexp.MustCompile(`^[a-z_]+\s`)

// isDirectiveFragment reports whether a Caddyfile is a fragment of a site
// block.
func isDirectiveFragment(text []byte) bool {
	text = bytes.TrimSpace(text)
	return directiveName.Match(text) && !bytes.HasPrefix(text, []byte("localhost"))
}

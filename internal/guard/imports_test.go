package guard

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The pipeline runs without Caddy: neither this package nor any package of
// the module it imports, however indirectly, imports Caddy.
func TestNoCaddyImport(t *testing.T) {
	const module = "github.com/pspguard/pspguard/"
	seen := map[string]bool{}
	var walk func(dir, from string)
	walk = func(dir, from string) {
		if seen[dir] {
			return
		}
		seen[dir] = true
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s (%v)", dir, err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				switch {
				case strings.Contains(path, "caddyserver"):
					t.Errorf("%s imports %s (reached from %s)", name, path, from)
				case strings.HasPrefix(path, module):
					walk(filepath.Join("..", "..", strings.TrimPrefix(path, module)), name)
				}
			}
		}
	}
	walk(".", "internal/guard")
	if len(seen) < 5 {
		t.Fatalf("only %d packages walked", len(seen))
	}
}

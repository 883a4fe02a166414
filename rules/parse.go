package rules

import (
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Keys of a version 1 rules file.
var (
	topKeys         = []string{"version", "auto_capture", "categories", "merchants", "default_category"}
	autoCaptureKeys = []string{"allowed_categories", "require_emd", "physical_lines_allowed"}
	merchantKeys    = []string{"category", "auto_capture_approval"}
	approvalKeys    = []string{"reference", "expires"}
)

// categoryName is the spelling of a category a file may add: lower-case
// snake_case, like the built-in ones, so names read the same everywhere.
var categoryName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Parse parses a rules file; filename only labels problems. Every key is
// checked: unknown keys, wrong types, unknown categories, bad dates and
// duplicates are all reported together as a *Problems, each with its line.
// A file with another version than 1 is reported for that alone, since
// its other keys may mean something else.
func Parse(filename string, data []byte) (*Rules, error) {
	p := &parser{file: filename}
	root := p.document(data)
	if root == nil {
		return nil, p.err()
	}
	if v := versionNode(root); v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" && v.Value != "1" {
		p.addAt(v, "version", "unsupported version %s: this gateway reads version 1", v.Value)
		return nil, p.err()
	}
	entries, ok := p.mapping(root, "", false, topKeys...)
	if !ok {
		return nil, p.err()
	}
	top := make(map[string]entry, len(entries))
	for _, e := range entries {
		top[e.key] = e
	}

	r := &Rules{version: 1, digest: digest(data), merchants: make(map[string]*merchant)}
	if e, ok := top["version"]; !ok {
		p.addAt(root, "version", "missing: a rules file starts with version: 1")
	} else if v := e.v; v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
		// Checked as version 1: "1" in quotes is a slip, not another schema.
		p.addAt(v, e.field, "must be the number 1, not %s", describe(v))
	}

	b := &builder{parser: p, r: r, index: make(map[string]int)}
	for _, name := range builtinCategories {
		b.addCategory(name)
	}
	if e, ok := top["categories"]; ok {
		b.extraCategories(e)
	}
	b.allowed, b.physical = defaultAllowed, defaultPhysicalLinesAllowed
	if e, ok := top["auto_capture"]; ok {
		b.autoCapture(e)
	}
	if e, ok := top["merchants"]; ok {
		b.merchants(e)
	}
	r.defaultCategory = b.index[Unknown]
	if e, ok := top["default_category"]; ok {
		if c, ok := b.category(e.v, e.field); ok {
			r.defaultCategory = c
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	b.apply()
	return r, nil
}

// versionNode finds the value of the top-level version key, if any.
func versionNode(root *yaml.Node) *yaml.Node {
	if root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "version" {
			return resolve(root.Content[i+1])
		}
	}
	return nil
}

// builder turns the checked nodes of a rules file into Rules.
type builder struct {
	*parser
	r        *Rules
	index    map[string]int // category name -> index in r.categories
	allowed  []string
	physical []string
	emd      map[string]string // category -> EMD key
}

func (b *builder) addCategory(name string) {
	b.index[name] = len(b.r.categories)
	b.r.categories = append(b.r.categories, category{name: name})
}

// known lists every category name, for "unknown category" messages.
func (b *builder) known() string {
	names := make([]string, len(b.r.categories))
	for i, c := range b.r.categories {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// category reads a category name and returns its index.
func (b *builder) category(n *yaml.Node, at string) (int, bool) {
	name, ok := b.str(n, at, "a category name")
	if !ok {
		return 0, false
	}
	return b.lookup(n, at, name)
}

func (b *builder) lookup(n *yaml.Node, at, name string) (int, bool) {
	c, ok := b.index[name]
	if !ok {
		b.addAt(n, at, "unknown category %q (known: %s)", name, b.known())
	}
	return c, ok
}

// extraCategories reads categories: more names a merchant may have.
func (b *builder) extraCategories(e entry) {
	if isNull(e.v) {
		return
	}
	items, ok := b.list(e.v, e.field, "category names")
	if !ok {
		return
	}
	first := make(map[string]int, len(items))
	for _, n := range items {
		name, ok := b.str(n, e.field, "a category name")
		if !ok {
			continue
		}
		switch line, dup := first[name]; {
		case dup:
			b.addAt(n, e.field, "category %q listed twice (first on line %d)", name, line)
		case contains(builtinCategories, name):
			b.addAt(n, e.field, "category %q is built in; list only new names here", name)
		case !categoryName.MatchString(name):
			b.addAt(n, e.field, "category %q must be lower-case letters, digits and underscores, starting with a letter", name)
		default:
			first[name] = n.Line
			b.addCategory(name)
		}
	}
}

// autoCapture reads the auto_capture section.
func (b *builder) autoCapture(e entry) {
	entries, _ := b.mapping(e.v, e.field, true, autoCaptureKeys...)
	for _, e := range entries {
		switch e.key {
		case "allowed_categories":
			b.allowed = b.categoryList(e)
		case "physical_lines_allowed":
			b.physical = b.categoryList(e)
		case "require_emd":
			b.requireEMD(e)
		}
	}
}

// categoryList reads a list of categories that auto-capture in some way;
// unknown never auto-captures, so it may not be listed.
func (b *builder) categoryList(e entry) []string {
	items, ok := b.list(e.v, e.field, "categories")
	if !ok {
		return nil
	}
	names := make([]string, 0, len(items))
	first := make(map[string]int, len(items))
	for _, n := range items {
		name, ok := b.str(n, e.field, "a category name")
		if !ok {
			continue
		}
		if _, ok := b.lookup(n, e.field, name); !ok {
			continue
		}
		if line, dup := first[name]; dup {
			b.addAt(n, e.field, "category %q listed twice (first on line %d)", name, line)
			continue
		}
		first[name] = n.Line
		if name == Unknown {
			b.addAt(n, e.field, "category %q never auto-captures and cannot be listed here", Unknown)
			continue
		}
		names = append(names, name)
	}
	return names
}

// requireEMD reads require_emd: category -> EMD key.
func (b *builder) requireEMD(e entry) {
	entries, _ := b.mapping(e.v, e.field, true)
	b.emd = make(map[string]string, len(entries))
	for _, e := range entries {
		if _, ok := b.lookup(e.k, e.field, e.key); !ok {
			continue
		}
		if e.key == Unknown {
			b.addAt(e.k, e.field, "category %q never auto-captures and needs no extra merchant data", Unknown)
			continue
		}
		if key, ok := b.str(e.v, e.field, "an extra merchant data key, e.g. voucher"); ok {
			b.emd[e.key] = key
		}
	}
}

// merchants reads the merchants section.
func (b *builder) merchants(e entry) {
	entries, _ := b.mapping(e.v, e.field, true)
	for _, e := range entries {
		if strings.TrimSpace(e.key) == "" {
			b.addAt(e.k, "merchants", "a merchant name must not be empty")
			continue
		}
		if m, ok := b.merchant(e); ok {
			b.r.merchants[e.key] = m
		}
	}
}

func (b *builder) merchant(e entry) (*merchant, bool) {
	if isNull(e.v) {
		b.addAt(e.k, e.field, "needs a category, e.g. category: digital_products")
		return nil, false
	}
	entries, ok := b.mapping(e.v, e.field, false, merchantKeys...)
	if !ok {
		return nil, false
	}
	m := &merchant{}
	good, hasCategory := true, false
	var approval *entry
	for i, f := range entries {
		switch f.key {
		case "category":
			hasCategory = true
			c, ok := b.category(f.v, f.field)
			m.category, good = c, good && ok
		case "auto_capture_approval":
			approval = &entries[i]
			good = b.approval(f, m) && good
		}
	}
	if !hasCategory {
		b.addAt(e.k, field(e.field, "category"), "missing: every merchant needs a category")
		return nil, false
	}
	if !good {
		return nil, false
	}
	if approval != nil && b.r.categories[m.category].name == Unknown {
		// A merchant of unknown category is one nobody has classified;
		// an approval for it would be an approval for anything.
		b.addAt(approval.k, approval.field, "a merchant of category %q cannot hold an approval; give it its real category", Unknown)
		return nil, false
	}
	return m, true
}

// approval reads auto_capture_approval: an explicit, dated approval from
// Klarna. It counts through the whole of its expiry day, in UTC.
func (b *builder) approval(e entry, m *merchant) bool {
	entries, ok := b.mapping(e.v, e.field, false, approvalKeys...)
	if !ok {
		return false
	}
	var hasRef, hasExpires bool
	for _, f := range entries {
		switch f.key {
		case "reference":
			hasRef = true
			v := f.v
			if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!str" && v.ShortTag() != "!!int") {
				b.addAt(v, f.field, "must be the approval's reference, e.g. KL-2026-118, not %s", describe(v))
				ok = false
			} else if strings.TrimSpace(v.Value) == "" {
				b.addAt(v, f.field, "must be the approval's reference, e.g. KL-2026-118, not empty")
				ok = false
			} else {
				m.approval = v.Value
			}
		case "expires":
			hasExpires = true
			if d, good := b.date(f.v, f.field); good {
				m.expires = f.v.Value
				m.until = d.AddDate(0, 0, 1)
				m.line = f.v.Line
			} else {
				ok = false
			}
		}
	}
	if !hasRef {
		b.addAt(e.k, field(e.field, "reference"), "missing: an approval needs the reference Klarna gave it")
		ok = false
	}
	if !hasExpires {
		b.addAt(e.k, field(e.field, "expires"), "missing: an approval needs its expiry date, YYYY-MM-DD")
		ok = false
	}
	return ok
}

// apply sets what each category may do, once the file is known valid.
func (b *builder) apply() {
	cats := b.r.categories
	for _, name := range b.allowed {
		cats[b.index[name]].allowed = true
	}
	for _, name := range b.physical {
		cats[b.index[name]].physicalOK = true
	}
	for name, key := range b.emd {
		cats[b.index[name]].emdKey = key
		if !contains(b.r.emdKeys, key) {
			b.r.emdKeys = append(b.r.emdKeys, key)
		}
	}
	slices.Sort(b.r.emdKeys)
	b.r.allowed, b.r.physicalAllowed = b.allowed, b.physical
}

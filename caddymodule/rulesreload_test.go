package caddymodule

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pspguard/pspguard/rules"
)

// Rules files for the watcher tests. restrictedRules lets only in-store
// merchants auto-capture; cutOffRules is the start of the next version as
// a writer leaves it part-way: valid YAML whose missing auto_capture
// section falls back to Klarna's five categories, digital products among
// them.
const (
	restrictedRules = "version: 1\nmerchants:\n  digitalshop:\n    category: digital_products\n" +
		"auto_capture:\n  allowed_categories: [in_store]\n"
	cutOffRules = "version: 1\nmerchants:\n  digitalshop:\n    category: digital_products\n  newshop:\n    category: in_store\n"
	nextRules   = cutOffRules + "auto_capture:\n  allowed_categories: [in_store]\n"
)

// watchTest drives a rules watcher poll by poll: check is called directly,
// and every write sets the file's modification time a second after the
// last one, so no test waits on a clock.
type watchTest struct {
	t       *testing.T
	path    string
	w       *rulesWatcher
	inForce *rules.Rules
	logs    *observer.ObservedLogs
	m       *handlerMetrics
	mod     time.Time
}

func newWatchTest(t *testing.T, content string) *watchTest {
	t.Helper()
	wt := &watchTest{t: t, path: filepath.Join(t.TempDir(), "rules.yaml"), mod: time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)}
	wt.write(content)
	r, err := rules.Load(wt.path)
	if err != nil {
		t.Fatal(err)
	}
	wt.inForce = r
	core, logs := observer.New(zap.InfoLevel)
	wt.logs = logs
	wt.m = &handlerMetrics{reloads: [2]prometheus.Counter{
		prometheus.NewCounter(prometheus.CounterOpts{Name: "failure"}),
		prometheus.NewCounter(prometheus.CounterOpts{Name: "success"}),
	}}
	wt.w = watchRules(wt.path, r, zap.New(core), wt.m, func(r *rules.Rules) { wt.inForce = r })
	wt.poll(1) // the file as it was loaded: nothing to do
	return wt
}

// write replaces the file's content in place, as a shell redirect does.
func (wt *watchTest) write(content string) {
	wt.t.Helper()
	if err := os.WriteFile(wt.path, []byte(content), 0o600); err != nil {
		wt.t.Fatal(err)
	}
	wt.touch()
}

func (wt *watchTest) touch() {
	wt.t.Helper()
	wt.mod = wt.mod.Add(time.Second)
	if err := os.Chtimes(wt.path, wt.mod, wt.mod); err != nil {
		wt.t.Fatal(err)
	}
}

func (wt *watchTest) poll(n int) {
	for range n {
		wt.w.check()
	}
}

// digitalshopAutoCaptures reports whether the rules in force let
// digitalshop auto-capture.
func (wt *watchTest) digitalshopAutoCaptures() bool {
	return wt.inForce.Decide(rules.Order{Merchant: "digitalshop", AutoCapture: rules.AutoCaptureTrue}, wt.mod).Allowed
}

// reloads returns the failure and success counts of the rules reloads.
func (wt *watchTest) reloads() (failures, successes int) {
	wt.t.Helper()
	var n [2]int
	for i, c := range wt.m.reloads {
		var d dto.Metric
		if err := c.Write(&d); err != nil {
			wt.t.Fatal(err)
		}
		n[i] = int(d.GetCounter().GetValue())
	}
	return n[0], n[1]
}

func (wt *watchTest) expect(step string, failures, successes int, digest string) {
	wt.t.Helper()
	if f, s := wt.reloads(); f != failures || s != successes {
		wt.t.Errorf("%s: %d failed and %d successful reloads, want %d and %d; log: %v", step, f, s, failures, successes, wt.messages())
	}
	if got := wt.inForce.Digest(); got != digest {
		wt.t.Errorf("%s: rules in force %.12s, want %.12s", step, got, digest)
	}
}

func (wt *watchTest) messages() []string {
	var out []string
	for _, e := range wt.logs.All() {
		out = append(out, e.Message)
	}
	return out
}

func digestOf(t *testing.T, content string) string {
	t.Helper()
	r, err := rules.Parse("rules.yaml", []byte(content))
	if err != nil {
		t.Fatal(err)
	}
	return r.Digest()
}

// A file rewritten in place is cut off while its writer is at work, and
// the cut-off file is valid rules with permissive defaults. It is not
// applied however many polls read it while it keeps changing or before it
// has been read alike by the poll that saw it and two more: the merchant
// the rules restrict never auto-captures in between.
func TestRulesWatcherWaitsForAFileWrittenInPlace(t *testing.T) {
	wt := newWatchTest(t, restrictedRules)
	restricted, next := wt.inForce.Digest(), digestOf(t, nextRules)

	wt.write(cutOffRules) // the writer stalls here for two polls
	wt.poll(2)
	if wt.digitalshopAutoCaptures() {
		t.Fatal("the cut-off file was applied: digitalshop may auto-capture")
	}
	wt.expect("cut off", 0, 0, restricted)

	wt.write(nextRules)
	wt.poll(2)
	wt.expect("complete, read by two polls", 0, 0, restricted)
	wt.poll(1)
	wt.expect("complete, read by three polls", 0, 1, next)
	if wt.digitalshopAutoCaptures() {
		t.Error("digitalshop may auto-capture under the new rules")
	}
}

// A file emptied by its writer's redirect and written a little later is
// not refused as an empty file: no failed reload, so no alert.
func TestRulesWatcherWaitsForAnEmptyFileToBeWritten(t *testing.T) {
	wt := newWatchTest(t, restrictedRules)
	wt.write("")
	wt.poll(2)
	wt.write(nextRules)
	wt.poll(3)
	wt.expect("after the write", 0, 1, digestOf(t, nextRules))
	if logs := wt.logs.FilterMessage("rules change refused; keeping the last valid rules"); logs.Len() != 0 {
		t.Errorf("the empty file was refused: %v", logs.All())
	}
}

// A file that changes at every poll is applied only once it stops.
func TestRulesWatcherWaitsForAFileThatKeepsChanging(t *testing.T) {
	wt := newWatchTest(t, restrictedRules)
	restricted := wt.inForce.Digest()
	content := cutOffRules
	for i := range 5 {
		content += "# line " + string(rune('a'+i)) + "\n"
		wt.write(content)
		wt.poll(1)
		wt.expect("still changing", 0, 0, restricted)
	}
	// The same content written again with a new time is a change too.
	wt.touch()
	wt.poll(2)
	wt.expect("touched while changing", 0, 0, restricted)
	wt.poll(1)
	wt.expect("settled", 0, 1, digestOf(t, content))
}

// A file swapped in whole, by a rename or a Kubernetes ConfigMap's ..data
// symlink, takes effect at the third poll that reads it: three poll
// intervals at most after the swap.
func TestRulesWatcherAppliesSwappedFiles(t *testing.T) {
	t.Run("rename", func(t *testing.T) {
		wt := newWatchTest(t, restrictedRules)
		restricted := wt.inForce.Digest()
		tmp := wt.path + ".tmp"
		if err := os.WriteFile(tmp, []byte(nextRules), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, wt.path); err != nil {
			t.Fatal(err)
		}
		wt.poll(2)
		wt.expect("two polls after the rename", 0, 0, restricted)
		wt.poll(1)
		wt.expect("three polls after the rename", 0, 1, digestOf(t, nextRules))
	})
	t.Run("configmap", func(t *testing.T) {
		// The layout the kubelet writes: rules.yaml -> ..data/rules.yaml,
		// ..data -> a timestamped directory, swapped by renaming a new
		// symlink over ..data.
		dir := t.TempDir()
		version := func(name, content string) {
			if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name, "rules.yaml"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
		}
		version("..2026_12_05_04_00_00.1", restrictedRules)
		path := filepath.Join(dir, "rules.yaml")
		if err := os.Symlink(filepath.Join("..data", "rules.yaml"), path); err != nil {
			t.Fatal(err)
		}
		r, err := rules.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		wt := &watchTest{t: t, inForce: r, m: &handlerMetrics{reloads: [2]prometheus.Counter{
			prometheus.NewCounter(prometheus.CounterOpts{Name: "failure"}),
			prometheus.NewCounter(prometheus.CounterOpts{Name: "success"}),
		}}}
		core, logs := observer.New(zap.InfoLevel)
		wt.logs = logs
		wt.w = watchRules(path, r, zap.New(core), wt.m, func(r *rules.Rules) { wt.inForce = r })
		wt.poll(3)
		wt.expect("before the swap", 0, 0, r.Digest())

		version("..2026_12_05_04_10_00.2", nextRules)
		wt.poll(2)
		wt.expect("two polls after the swap", 0, 0, r.Digest())
		wt.poll(1)
		wt.expect("three polls after the swap", 0, 1, digestOf(t, nextRules))
	})
}

// A file touched but not changed is not reloaded; an invalid change is
// refused and counted once, however many polls read it.
func TestRulesWatcherTouchedAndInvalid(t *testing.T) {
	wt := newWatchTest(t, restrictedRules)
	restricted := wt.inForce.Digest()
	wt.touch()
	wt.poll(5)
	wt.expect("touched", 0, 0, restricted)
	if n := wt.logs.Len(); n != 0 {
		t.Errorf("touching the file logged %v", wt.messages())
	}

	wt.write("version: 1\nmerchants:\n  digitalshop:\n    category: digital_goods\n")
	wt.poll(10)
	wt.expect("invalid", 1, 0, restricted)
	if logs := wt.logs.FilterMessage("rules change refused; keeping the last valid rules"); logs.Len() != 1 {
		t.Errorf("%d refusals logged, want 1: %v", logs.Len(), wt.messages())
	}
}

// A rules file that exists but cannot be read (here the path became a
// directory) is reported and counted as a failed reload once, however many
// polls find it so; a removal after it is another failure, reported too.
// The rules in force stay, and the file is applied again when it is back,
// even with the same rules, so the log shows it is.
func TestRulesWatcherReportsAnUnreadableFile(t *testing.T) {
	wt := newWatchTest(t, restrictedRules)
	restricted := wt.inForce.Digest()
	unreadable := func(want int) {
		t.Helper()
		logs := wt.logs.FilterMessage("rules file unreadable; keeping the last valid rules")
		if logs.Len() != want {
			t.Fatalf("%d unreadable-file lines logged, want %d: %v", logs.Len(), want, wt.messages())
		}
	}

	if err := os.Remove(wt.path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(wt.path, 0o755); err != nil {
		t.Fatal(err)
	}
	wt.poll(5)
	wt.expect("a directory", 1, 0, restricted)
	unreadable(1)
	if err, _ := wt.logs.FilterMessage("rules file unreadable; keeping the last valid rules").All()[0].ContextMap()["error"].(string); err != "read "+wt.path+": is a directory" {
		t.Errorf("logged error %q", err)
	}

	if err := os.Remove(wt.path); err != nil {
		t.Fatal(err)
	}
	wt.poll(5)
	wt.expect("removed", 2, 0, restricted)
	unreadable(2)

	wt.write(restrictedRules)
	wt.poll(3)
	wt.expect("back", 2, 1, restricted)
	if logs := wt.logs.FilterMessage("rules reloaded"); logs.Len() != 1 {
		t.Errorf("%d reloads logged once the file is back, want 1: %v", logs.Len(), wt.messages())
	}
}

package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pspguard/pspguard/rules"
)

// rulesPollInterval is how often the rules file is checked for changes.
// Polling (rather than inotify) also works for files replaced by renames,
// ConfigMap symlink swaps and network filesystems; one stat a second is free.
var rulesPollInterval = time.Second

// rulesSettlePolls is how many polls in a row must read a changed file
// alike (size, modification time and SHA-256) before it is acted on: the
// poll that sees the change and two that find it unchanged. A file written
// in place (a shell redirect, a copy, an editor saving over it) is empty or
// cut off part-way until its writer is done, and a rules file cut off
// part-way is often valid YAML whose missing sections fall back to
// permissive defaults. A file swapped in whole (a rename, a ConfigMap's
// ..data symlink) waits the same two polls, so a change takes effect within
// three poll intervals of its last write.
const rulesSettlePolls = 3

// rulesWatcher reloads the rules file when its content changes and has
// settled. An invalid change is refused, logged and counted; the last
// valid rules keep enforcing. A file that is removed or cannot be read is
// reported once per distinct failure, and the rules stay in force until a
// valid file is back.
type rulesWatcher struct {
	path    string
	logger  *zap.Logger
	m       *handlerMetrics
	apply   func(*rules.Rules)
	done    chan struct{}
	stopped sync.WaitGroup

	// settled is the content last acted on (applied or refused), so that
	// an unchanged file is neither read again nor reported twice.
	settled fileLook
	// seen is what the last polls read while the file differed from
	// settled, and seenPolls how many of them in a row read it alike.
	seen      fileLook
	seenPolls int
	// failure is the error that kept the file from being read since it
	// last settled ("" if none), so each distinct failure is reported
	// once. After one, the file is acted on when it settles even if it
	// holds the rules in force, so the log and the reloads counter show
	// that it is back.
	failure string
}

// fileLook is what one poll read of the rules file.
type fileLook struct {
	mod  int64 // modification time, nanoseconds since the epoch
	size int64
	sum  [sha256.Size]byte
}

// newRulesWatcher watches path, whose rules current are in force, every
// interval.
func newRulesWatcher(path string, current *rules.Rules, every time.Duration, logger *zap.Logger, m *handlerMetrics, apply func(*rules.Rules)) *rulesWatcher {
	w := watchRules(path, current, logger, m, apply)
	w.stopped.Add(1)
	go w.run(every)
	return w
}

// watchRules makes a watcher that polls when check is called. The file's
// size and time are left unknown, so the first poll reads it: it may have
// changed since current was loaded from it.
func watchRules(path string, current *rules.Rules, logger *zap.Logger, m *handlerMetrics, apply func(*rules.Rules)) *rulesWatcher {
	w := &rulesWatcher{path: path, logger: logger, m: m, apply: apply, done: make(chan struct{})}
	if sum, err := hex.DecodeString(current.Digest()); err == nil {
		copy(w.settled.sum[:], sum)
	}
	return w
}

func (w *rulesWatcher) run(every time.Duration) {
	defer w.stopped.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
			w.check()
		}
	}
}

func (w *rulesWatcher) stop() {
	close(w.done)
	w.stopped.Wait()
}

// check is one poll: it reads the file if it changed since it last
// settled, and acts on it once it has settled.
func (w *rulesWatcher) check() {
	fi, err := os.Stat(w.path)
	if err != nil {
		w.unreadable(err)
		return
	}
	mod := fi.ModTime().UnixNano()
	if w.failure == "" && w.seenPolls == 0 && mod == w.settled.mod && fi.Size() == w.settled.size {
		return
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.unreadable(err)
		return
	}
	look := fileLook{mod: mod, size: fi.Size(), sum: sha256.Sum256(data)}
	if w.failure == "" && look.sum == w.settled.sum {
		// Touched, or changed back before it settled: nothing to act on.
		w.settled, w.seenPolls = look, 0
		return
	}
	if w.seenPolls > 0 && look == w.seen {
		w.seenPolls++
	} else {
		w.seen, w.seenPolls = look, 1
	}
	if w.seenPolls < rulesSettlePolls {
		return
	}
	w.settled, w.seenPolls, w.failure = look, 0, ""

	r, err := rules.Parse(w.path, data)
	if err != nil {
		w.m.rulesLoad(false)
		w.logger.Error("rules change refused; keeping the last valid rules",
			zap.String("file", w.path), zap.String("rejected_digest", hex.EncodeToString(look.sum[:])),
			zap.Error(err))
		return
	}
	w.apply(r)
	w.m.rulesLoad(true)
	w.logger.Info("rules reloaded", zap.String("file", w.path),
		zap.String("digest", r.Digest()), zap.Int("version", r.Version()))
}

// unreadable reports that the file is missing or cannot be read, once for
// each distinct failure; the rules in force stay.
func (w *rulesWatcher) unreadable(err error) {
	w.seenPolls = 0
	if err.Error() == w.failure {
		return
	}
	w.failure = err.Error()
	w.m.rulesLoad(false)
	w.logger.Error("rules file unreadable; keeping the last valid rules",
		zap.String("file", w.path), zap.Error(err))
}

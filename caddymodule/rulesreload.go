package caddymodule

import (
	"bytes"
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

// rulesWatcher reloads the rules file when its content changes. An invalid
// change is refused, logged and counted; the last valid rules keep
// enforcing. A removed file is reported once and the rules stay in force
// until a valid file appears again.
type rulesWatcher struct {
	path    string
	logger  *zap.Logger
	m       *handlerMetrics
	apply   func(*rules.Rules)
	done    chan struct{}
	stopped sync.WaitGroup

	// Last content seen (valid or not), so an unchanged invalid file is
	// reported once, not every second.
	lastSum     [sha256.Size]byte
	lastMod     time.Time
	lastSize    int64
	lastMissing bool
}

func newRulesWatcher(path string, current *rules.Rules, every time.Duration, logger *zap.Logger, m *handlerMetrics, apply func(*rules.Rules)) *rulesWatcher {
	w := &rulesWatcher{path: path, logger: logger, m: m, apply: apply, done: make(chan struct{})}
	if sum, err := hex.DecodeString(current.Digest()); err == nil {
		copy(w.lastSum[:], sum)
	}
	if fi, err := os.Stat(path); err == nil {
		w.lastMod, w.lastSize = fi.ModTime(), fi.Size()
	}
	w.stopped.Add(1)
	go w.run(every)
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

// check reloads the file if it changed since the last look.
func (w *rulesWatcher) check() {
	fi, err := os.Stat(w.path)
	if err != nil {
		if !w.lastMissing {
			w.lastMissing = true
			w.m.rulesLoad(false)
			w.logger.Error("rules file unreadable; keeping the last valid rules",
				zap.String("file", w.path), zap.Error(err))
		}
		return
	}
	if !w.lastMissing && fi.ModTime().Equal(w.lastMod) && fi.Size() == w.lastSize {
		return
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		return // caught by the next stat
	}
	w.lastMod, w.lastSize = fi.ModTime(), fi.Size()
	sum := sha256.Sum256(data)
	if !w.lastMissing && bytes.Equal(sum[:], w.lastSum[:]) {
		return // touched, not changed
	}
	w.lastMissing = false
	w.lastSum = sum

	r, err := rules.Parse(w.path, data)
	if err != nil {
		w.m.rulesLoad(false)
		w.logger.Error("rules change refused; keeping the last valid rules",
			zap.String("file", w.path), zap.String("rejected_digest", hex.EncodeToString(sum[:])),
			zap.Error(err))
		return
	}
	w.apply(r)
	w.m.rulesLoad(true)
	w.logger.Info("rules reloaded", zap.String("file", w.path),
		zap.String("digest", r.Digest()), zap.Int("version", r.Version()))
}

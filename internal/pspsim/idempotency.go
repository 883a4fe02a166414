package pspsim

import (
	"sync"
	"time"
)

// idemKey scopes an idempotency key to a PSP and a merchant. Like Klarna,
// the simulator does not compare the method, path or body of a repeat.
type idemKey struct {
	psp, owner, key string
}

// idemEntry is one key's execution. done is closed once resp is set; resp
// is not written after that.
type idemEntry struct {
	done chan struct{}
	resp response
	at   time.Time
	fp   string // what a repeat must match (Stripe); "" where nothing is compared
}

// idemStore remembers the answers given under idempotency keys for ttl.
type idemStore struct {
	ttl time.Duration

	mu      sync.Mutex
	entries map[idemKey]*idemEntry
	queue   []queuedKey // in order of first use, for expiry
}

type queuedKey struct {
	key   idemKey
	entry *idemEntry
}

func newIdemStore(ttl time.Duration) *idemStore {
	return &idemStore{ttl: ttl, entries: make(map[idemKey]*idemEntry)}
}

// begin returns the entry for k. first is true when the caller is the first
// to use k within ttl: it must execute the request and complete the entry.
// Otherwise the caller waits on entry.done and answers with entry.resp.
func (st *idemStore) begin(k idemKey, now time.Time, fp string) (e *idemEntry, first bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.expire(now)
	if e, ok := st.entries[k]; ok {
		return e, false
	}
	e = &idemEntry{done: make(chan struct{}), at: now, fp: fp}
	st.entries[k] = e
	st.queue = append(st.queue, queuedKey{k, e})
	return e, true
}

// complete stores the answer and releases the waiting repeats.
func (st *idemStore) complete(e *idemEntry, resp response) {
	e.resp = resp
	close(e.done)
}

// expire forgets keys first used ttl or longer before now.
func (st *idemStore) expire(now time.Time) {
	n := 0
	for _, q := range st.queue {
		if now.Sub(q.entry.at) < st.ttl {
			break
		}
		if st.entries[q.key] == q.entry {
			delete(st.entries, q.key)
		}
		n++
	}
	st.queue = st.queue[n:]
}

func (st *idemStore) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.entries = make(map[idemKey]*idemEntry)
	st.queue = nil
}

// len reports how many keys are remembered.
func (st *idemStore) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.entries)
}

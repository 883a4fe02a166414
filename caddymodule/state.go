package caddymodule

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/pspguard/pspguard/internal/credentials"
	"github.com/pspguard/pspguard/internal/guard"
	"github.com/pspguard/pspguard/internal/idempotency"
	"github.com/pspguard/pspguard/internal/ledger"
	"github.com/pspguard/pspguard/internal/stores"
)

// pool holds the state that must survive `caddy reload`: the ledger, the
// idempotency cache and Redis connections. A reload provisions the new
// handler (which finds the state in the pool) before the old one is cleaned
// up, so the state is never dropped while a config using it is live.
var pool = caddy.NewUsagePool()

// pooledLedger and pooledIdem wrap stores so the pool can destruct them.
type pooledLedger struct{ ledger.Store }

func (p *pooledLedger) Destruct() error { return p.Close() }

type pooledIdem struct{ idempotency.Store }

func (p *pooledIdem) Destruct() error { return p.Close() }

// pooledCreds keeps what the PSP accepted across reloads; it holds no
// resource of its own.
type pooledCreds struct{ credentials.Store }

func (*pooledCreds) Destruct() error { return nil }

// pooledRedis is one Redis client (one server, Sentinel or Cluster) shared
// by every store and config that names the same connection, and the prober
// that keeps its store_up current.
type pooledRedis struct {
	client   redis.UniversalClient
	pipeline *redis.AutoPipeliner
	err      error

	up       atomic.Bool
	startErr error // why the first probe failed, nil if it answered
	stop     chan struct{}
	done     chan struct{}
}

// storeProbeInterval is how often a pooled store is pinged for store_up.
var storeProbeInterval = 2 * time.Second

// newPooledRedis probes the client once, so store_up is right from
// provisioning on, then keeps probing in the background until Destruct.
func newPooledRedis(client redis.UniversalClient, timeout time.Duration) *pooledRedis {
	p := &pooledRedis{client: client, stop: make(chan struct{}), done: make(chan struct{})}
	// It fails only for invalid pipeline options, and the defaults are valid.
	p.pipeline, p.err = p.client.AutoPipeline()
	p.startErr = p.probe(timeout)
	go func() {
		defer close(p.done)
		t := time.NewTicker(storeProbeInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.probe(timeout)
			}
		}
	}()
	return p
}

// probe pings the store within timeout and records whether it answered.
// A Cluster answers only when every master it knows does: one master down
// leaves the orders of its slots undecidable (and, once the Cluster marks
// itself failed, every order), and a PING to any other master would hide
// it.
func (p *pooledRedis) probe(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	if c, ok := p.client.(*redis.ClusterClient); ok {
		err = c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.Ping(ctx).Err()
		})
	} else {
		err = p.client.Ping(ctx).Err()
	}
	p.up.Store(err == nil)
	return err
}

func (p *pooledRedis) Destruct() error {
	close(p.stop)
	<-p.done
	return p.client.Close()
}

// acquireState finds or creates the handler's stores in the pool. Pool keys
// name everything that shapes a store, so a config change that needs a new
// store gets one, and an unchanged config keeps its state across reloads.
func (h *Handler) acquireState() error {
	idemOpts := idempotency.Options{Now: h.now, Capacity: h.Idempotency.Capacity, TTL: time.Duration(h.Idempotency.TTL),
		InFlightTTL: h.claimTTL()}
	var (
		lkey, ikey, ckey string
		newLedger        func() ledger.Store
		newIdem          func() idempotency.Store
		newCreds         func() credentials.Store
	)
	switch h.Store.Type {
	case "memory":
		lkey = memoryLedgerKey(h.Ledger.MaxOrders, h.lease())
		ikey = fmt.Sprintf("idempotency/memory/capacity=%d/ttl=%s/claim=%s", idemOpts.Capacity, idemOpts.TTL, idemOpts.InFlightTTL)
		newLedger = func() ledger.Store {
			return ledger.NewMemory(ledger.Options{Now: h.now, MaxOrders: h.Ledger.MaxOrders, Lease: h.lease()})
		}
		newIdem = func() idempotency.Store { return idempotency.NewMemory(idemOpts) }
		ckey = "credentials/memory/psp=" + h.dialect.Name()
		newCreds = func() credentials.Store { return credentials.NewMemory(credentials.Options{Now: h.now}) }

	case "redis":
		store := h.Store.resolved()
		if store.Prefix == "" { // a placeholder of an unset variable
			store.Prefix = stores.DefaultPrefix
		}
		rc, err := newRedisClient(store)
		if err != nil {
			return fmt.Errorf("psp_guard: store redis: %w", err)
		}
		key := rc.key
		conn, err := acquire(h, key, func() *pooledRedis { return newPooledRedis(rc.new(), time.Duration(store.Timeout)) })
		if err != nil {
			return err
		}
		if conn.err != nil {
			return fmt.Errorf("psp_guard: store redis: %w", conn.err)
		}
		if conn.startErr != nil {
			// The gateway starts anyway: create-orders go on, and the rest
			// resumes when the store answers, without a restart.
			h.logger.Error("store redis does not answer; captures and order changes get 503 until it does",
				zap.String("site", h.site), zap.Error(conn.startErr))
		}
		h.storeUp = conn.up.Load
		// The stores' scripts go through the client's automatic pipeline:
		// the calls of concurrent requests share writes and reads on one
		// connection, which saves Redis and the gateway a system call or
		// two per call under load, and costs nothing when calls are few.
		client := conn.pipeline
		prefix := store.Prefix
		idemOpts.Prefix = prefix
		fence := time.Duration(store.FailoverFence)
		lkey = fmt.Sprintf("%s/ledger/prefix=%s/ttl=%s/lease=%s/fence=%s", key, prefix, time.Duration(h.Ledger.OrderTTL), h.lease(), fence)
		ikey = fmt.Sprintf("%s/idempotency/prefix=%s/ttl=%s/claim=%s", key, prefix, idemOpts.TTL, idemOpts.InFlightTTL)
		newLedger = func() ledger.Store {
			return ledger.NewRedis(client, ledger.Options{Prefix: prefix,
				OrderTTL: time.Duration(h.Ledger.OrderTTL), Lease: h.lease(),
				Fence: fence, Cluster: store.Topology == topologyCluster})
		}
		newIdem = func() idempotency.Store {
			return idempotency.NewRedis(client, idemOpts)
		}
		ckey = fmt.Sprintf("%s/credentials/prefix=%s/psp=%s", key, prefix, h.dialect.Name())
		newCreds = func() credentials.Store {
			return credentials.NewRedis(client, credentials.Options{Prefix: prefix, Now: h.now, PSP: h.dialect.Name()})
		}

	default:
		return fmt.Errorf("psp_guard: unknown store %q", h.Store.Type)
	}

	l, err := acquire(h, lkey, func() *pooledLedger { return &pooledLedger{Store: newLedger()} })
	if err != nil {
		return err
	}
	h.ledger = l
	i, err := acquire(h, ikey, func() *pooledIdem { return &pooledIdem{Store: newIdem()} })
	if err != nil {
		return err
	}
	h.idem = i
	h.keyed = ledger.NewKeyed(l.Store, i.Store)
	c, err := acquire(h, ckey, func() *pooledCreds { return &pooledCreds{Store: newCreds()} })
	if err != nil {
		return err
	}
	h.creds = c
	return nil
}

// lease is how long a capture reservation stays pending before the ledger
// presumes its gateway gone: longer than any capture can be in flight (an
// order read, then the capture itself), with a margin for the store calls
// around them.
func (h *Handler) lease() time.Duration {
	return leaseFor(time.Duration(h.LookupTimeout), time.Duration(h.UpstreamTimeout))
}

func leaseFor(lookup, upstream time.Duration) time.Duration {
	return lookup + upstream + 30*time.Second
}

// claimTTL is how long an idempotency key's claim lives if its request
// never settles it (a crashed gateway): the stores' default, or longer
// when the timeouts let a claimed request run longer, so that a duplicate
// is never forwarded while its first is still on its way.
func (h *Handler) claimTTL() time.Duration {
	var store time.Duration
	if h.Store.Type != "memory" {
		store = time.Duration(h.Store.Timeout)
	}
	return claimTTLFor(time.Duration(h.LookupTimeout), time.Duration(h.UpstreamTimeout), store)
}

func claimTTLFor(lookup, upstream, store time.Duration) time.Duration {
	return max(idempotency.DefaultInFlightTTL, guard.ClaimSpan(lookup, upstream, store)+30*time.Second)
}

// memoryLedgerKey names a memory ledger in the usage pool.
func memoryLedgerKey(maxOrders int, lease time.Duration) string {
	return fmt.Sprintf("ledger/memory/max=%d/lease=%s", maxOrders, lease)
}

// acquire finds the pooled value under key or builds it, and remembers the
// key so Cleanup gives it back.
func acquire[T caddy.Destructor](h *Handler, key string, build func() T) (T, error) {
	v, _, err := pool.LoadOrNew(key, func() (caddy.Destructor, error) { return build(), nil })
	if err != nil {
		var zero T
		return zero, err
	}
	h.poolKeys = append(h.poolKeys, key)
	return v.(T), nil
}

// releaseState gives back what acquireState took, in reverse order, so a
// Redis client outlives the stores built on it.
func (h *Handler) releaseState() error {
	var firstErr error
	for i := len(h.poolKeys) - 1; i >= 0; i-- {
		if _, err := pool.Delete(h.poolKeys[i]); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	h.poolKeys = nil
	return firstErr
}

package resource

import (
	"container/list"
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"
)

// cacheKey identifies a token in the caches. It is the token's SHA-256, so a memory
// dump of the cache yields no usable bearer token.
type cacheKey [sha256.Size]byte

func keyOf(token string) cacheKey { return sha256.Sum256([]byte(token)) }

// lru is a size-bounded map whose entries also expire. The least recently used entry
// is dropped when it is full; expired entries are dropped when they are found.
type lru[V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *lruEntry, most recently used first
	items map[cacheKey]*list.Element
}

type lruEntry[V any] struct {
	key     cacheKey
	value   V
	expires time.Time
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, order: list.New(), items: make(map[cacheKey]*list.Element)}
}

func (c *lru[V]) get(k cacheKey, now time.Time) (V, bool) {
	var zero V
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return zero, false
	}
	e := el.Value.(*lruEntry[V])
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, k)
		return zero, false
	}
	c.order.MoveToFront(el)
	return e.value, true
}

func (c *lru[V]) put(k cacheKey, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*lruEntry[V])
		e.value, e.expires = v, expires
		c.order.MoveToFront(el)
		return
	}
	c.items[k] = c.order.PushFront(&lruEntry[V]{key: k, value: v, expires: expires})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruEntry[V]).key)
	}
}

func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// flightGroup collapses concurrent introspections of one token into one request to
// the authorization server: a client that opens several streams at once with a fresh
// token costs one round trip, not one per stream.
type flightGroup struct {
	mu      sync.Mutex
	flights map[cacheKey]*flight
}

type flight struct {
	done    chan struct{}
	res     *introspection
	err     error
	waiters atomic.Int32 // callers that joined this flight, for tests
}

// do runs fn once for all concurrent callers with the same key. fn runs in its own
// goroutine with a context that outlives any one caller (it carries ctx's values, not
// its cancellation), so the first caller giving up does not fail the others; each
// caller still returns as soon as its own ctx is done.
func (g *flightGroup) do(ctx context.Context, k cacheKey, fn func(context.Context) (*introspection, error)) (*introspection, error) {
	g.mu.Lock()
	if g.flights == nil {
		g.flights = make(map[cacheKey]*flight)
	}
	f, ok := g.flights[k]
	if !ok {
		f = &flight{done: make(chan struct{})}
		g.flights[k] = f
		go func() {
			f.res, f.err = fn(context.WithoutCancel(ctx))
			g.mu.Lock()
			delete(g.flights, k)
			g.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters.Add(1)
	g.mu.Unlock()
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// waiting reports how many callers joined the flight for k (0 when there is none).
func (g *flightGroup) waiting(k cacheKey) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.flights[k]; ok {
		return int(f.waiters.Load())
	}
	return 0
}

package cimd

import (
	"container/list"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// freshness returns how long a response may be cached according to its headers
// (RFC 9111 §4.2.1), and false when it must not be cached at all. noHeader is the
// lifetime when the response says nothing (RFC 9111 §4.2.2 lets a cache pick one).
//
// This server is the only consumer of the response, not an intermediary, so
// `private` does not prevent caching. `no-cache` (store, but revalidate before every
// use) is treated like `no-store`, since revalidating costs as much as fetching a
// document this small.
func freshness(h http.Header, now time.Time, noHeader time.Duration) (time.Duration, bool) {
	var maxAge, sMaxAge = -1, -1
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), "=")
			value = strings.Trim(strings.TrimSpace(value), `"`)
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, false
			case "max-age":
				maxAge = deltaSeconds(value)
			case "s-maxage":
				sMaxAge = deltaSeconds(value)
			}
		}
	}
	age := time.Duration(max(0, deltaSeconds(h.Get("Age")))) * time.Second
	var lifetime time.Duration
	switch {
	case sMaxAge >= 0: // a shared cache prefers s-maxage; we serve many users
		lifetime = time.Duration(sMaxAge) * time.Second
	case maxAge >= 0:
		lifetime = time.Duration(maxAge) * time.Second
	case h.Get("Expires") != "":
		expires, err := http.ParseTime(h.Get("Expires"))
		if err != nil {
			return 0, false // RFC 9111 §5.3: an invalid Expires means already expired
		}
		// Measure against the origin's Date when it has one, so clock skew between
		// the two servers does not stretch or shrink the lifetime.
		base := now
		if date, err := http.ParseTime(h.Get("Date")); err == nil {
			base = date
		}
		lifetime = expires.Sub(base)
	default:
		lifetime = noHeader
	}
	lifetime -= age
	if lifetime <= 0 {
		return 0, false
	}
	return lifetime, true
}

// deltaSeconds parses RFC 9111 delta-seconds; -1 when absent. An invalid value counts
// as 0 (stale), as §1.2.2 asks; an overlarge one is capped.
func deltaSeconds(s string) int {
	if s == "" {
		return -1
	}
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case err != nil && strings.Trim(s, "0123456789") == "":
		return 1 << 31 // too many digits: "2147483648 seconds", §1.2.2
	case err != nil || n < 0:
		return 0
	case n > 1<<31:
		return 1 << 31
	}
	return int(n)
}

// lru is a size-bounded cache of documents with per-entry expiry. Not safe for
// concurrent use; the Fetcher's mutex guards it.
type lru struct {
	max   int
	order *list.List // front is most recently used; values are *cacheEntry
	byKey map[string]*list.Element
}

type cacheEntry struct {
	key     string
	doc     *Document
	expires time.Time
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

func (c *lru) get(key string, now time.Time) (*Document, bool) {
	el, ok := c.byKey[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.remove(key)
		return nil, false
	}
	c.order.MoveToFront(el)
	return e.doc, true
}

func (c *lru) put(key string, doc *Document, expires time.Time) {
	if el, ok := c.byKey[key]; ok {
		e := el.Value.(*cacheEntry)
		e.doc, e.expires = doc, expires
		c.order.MoveToFront(el)
		return
	}
	c.byKey[key] = c.order.PushFront(&cacheEntry{key: key, doc: doc, expires: expires})
	for c.order.Len() > c.max {
		c.remove(c.order.Back().Value.(*cacheEntry).key)
	}
}

func (c *lru) remove(key string) {
	if el, ok := c.byKey[key]; ok {
		c.order.Remove(el)
		delete(c.byKey, key)
	}
}

func (c *lru) len() int { return c.order.Len() }

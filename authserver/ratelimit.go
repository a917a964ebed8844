package authserver

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RateLimit is a token bucket per client address: an address may make Burst requests
// at once, then earns one more every Every.
type RateLimit struct {
	// Burst is how many requests an address may make at once. Zero means the default;
	// a negative value turns the limit off.
	Burst int
	// Every is how long an address waits for one more request once its burst is
	// spent. Zero means the default's.
	Every time.Duration
}

// DefaultRegistrationRateLimit bounds dynamic registrations per client address: 30 at
// once, then 30 a minute. Every registration is a store record that lives for the
// registration TTL (a year by default), so an unbounded endpoint is a way to fill the
// store. Real clients register once per install, and re-register only when the server
// forgets them.
var DefaultRegistrationRateLimit = RateLimit{Burst: 30, Every: 2 * time.Second}

// maxLimiterAddresses bounds the limiter's memory. Past it, addresses whose bucket has
// refilled are forgotten first (they lose nothing), then arbitrary ones.
const maxLimiterAddresses = 10000

// limiter is an in-process RateLimit keyed by client address. Each replica counts on
// its own, so N replicas allow N times the rate: this bounds abuse, it is not a quota.
type limiter struct {
	rate RateLimit
	now  func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate RateLimit, now func() time.Time) *limiter {
	if rate.Burst < 0 {
		return nil
	}
	if rate.Burst == 0 {
		rate.Burst = DefaultRegistrationRateLimit.Burst
	}
	if rate.Every <= 0 {
		rate.Every = DefaultRegistrationRateLimit.Every
	}
	return &limiter{rate: rate, now: now, buckets: map[string]*bucket{}}
}

// allow takes one request from key's bucket. When the bucket is empty it reports false
// and how long until the next request is allowed. A nil limiter allows everything.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = &bucket{tokens: float64(l.rate.Burst), last: now}
		l.buckets[key] = b
	}
	b.refill(now, l.rate)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) * float64(l.rate.Every))
	return false, wait
}

func (b *bucket) refill(now time.Time, rate RateLimit) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(float64(rate.Burst), b.tokens+float64(elapsed)/float64(rate.Every))
		b.last = now
	}
}

// makeRoom keeps the map under maxLimiterAddresses.
func (l *limiter) makeRoom(now time.Time) {
	if len(l.buckets) < maxLimiterAddresses {
		return
	}
	full := time.Duration(l.rate.Burst) * l.rate.Every
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < maxLimiterAddresses/2 {
			break
		}
		delete(l.buckets, k)
	}
}

// rateLimited answers 429 with Retry-After (RFC 6585 §4) when the request's client
// address has spent its budget, and reports whether it did.
func (s *Server) rateLimited(w http.ResponseWriter, r *http.Request, l *limiter) bool {
	ok, wait := l.allow(s.clientAddress(r))
	if ok {
		return false
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	s.writeError(w, r, newError(http.StatusTooManyRequests, errCodeTemporarilyUnavailable, "too many requests from this address, retry later"))
	return true
}

// clientAddress is the key a request is rate limited by: the peer's IP address or,
// when the peer is a trusted proxy (Options.TrustedProxies), the right-most address in
// X-Forwarded-For that is not one; only trusted proxies can have written what lies to
// its right. IPv6 addresses count by /64, the block one host usually holds.
func (s *Server) clientAddress(r *http.Request) string {
	addr := peerAddr(r.RemoteAddr)
	if addr.IsValid() && s.trustedProxy(addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break // garbage: stop at the last address a trusted proxy vouched for
			}
			addr = hop.Unmap()
			if !s.trustedProxy(addr) {
				break
			}
		}
	}
	if !addr.IsValid() {
		return r.RemoteAddr
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr parses http.Request.RemoteAddr ("ip:port").
func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

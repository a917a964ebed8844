package resource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// maxFeedBytes bounds one answer of the feed. The first read returns every retained
// entry, and revoking a whole provider revokes every grant at once: 32 MiB holds
// about half a million entries. A larger answer fails the read, and JWTs are then
// introspected (correct, only slower) until the entries age out.
const maxFeedBytes = 32 << 20

// defaultRetention is how long an entry is kept when the feed names no retention.
// The server keeps entries for at least the access-token TTL plus a minute (15 min
// by default); a follower that keeps them longer only spends a little memory.
const defaultRetention = time.Hour

// revocationFeed is the answer of GET /oauth/revocations.
type revocationFeed struct {
	Revocations []revocationEntry `json:"revocations"`
	Cursor      string            `json:"cursor"`
	Retention   float64           `json:"retention"` // seconds
}

// revocationEntry names a revoked grant or a revoked token, and when (Unix seconds).
type revocationEntry struct {
	GrantID string  `json:"gid"`
	TokenID string  `json:"jti"`
	At      float64 `json:"at"`
}

// follower follows the authorization server's revocation feed, so that a grant or a
// token revoked at the server stops verifying here within RevocationMaxLag although
// JWTs are verified without asking the server.
//
// When the feed cannot be read (the server is down, slow, or predates the feed), the
// follower is stale once its last successful read is older than RevocationMaxLag, and
// the Verifier then introspects JWTs instead of trusting them locally. The choice, of
// the three possible: accepting JWTs anyway would silently break the promise that a
// revoked grant stops working within seconds, exactly when an operator may be
// revoking because of an incident; refusing them would turn a feed outage into an
// outage of every MCP server although the tokens are fine and the server may well
// answer introspection. Introspection is authoritative (the server says whether the
// grant is live) and fails the way opaque tokens already do: 503 with Retry-After
// while the server is unreachable. Its answer for a JWT is reused for at most
// RevocationMaxLag rather than CacheTTL, so a grant revoked while the feed is stale
// still stops working here within RevocationMaxLag (and a request); the cost is one
// introspection per token per RevocationMaxLag while the feed is stale.
type follower struct {
	cfg *Config

	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
	firstSync chan struct{} // closed after the first successful poll
	attempted chan struct{} // closed after the first poll, successful or not

	mu        sync.RWMutex
	grants    map[string]time.Time // revoked grant id → when
	tokens    map[string]time.Time // revoked jti → when
	cursor    string
	retention time.Duration

	syncedAt atomic.Int64 // Unix nanoseconds when the last successful poll was sent; 0: never
	stale    atomic.Bool  // for logging the transitions once
	polls    atomic.Int32 // for tests
}

func newFollower(cfg *Config) *follower {
	return &follower{
		cfg:       cfg,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		firstSync: make(chan struct{}),
		attempted: make(chan struct{}),
		grants:    map[string]time.Time{},
		tokens:    map[string]time.Time{},
		retention: defaultRetention,
	}
}

// start begins polling, once. The first JWT calls it, so a resource server that only
// sees opaque tokens never reads the feed.
func (f *follower) start() {
	f.startOnce.Do(func() { go f.run() })
}

// close stops polling and waits for the poller to end.
func (f *follower) close() {
	f.startOnce.Do(func() { close(f.attempted); close(f.done) }) // never started: nothing to wait for
	f.stopOnce.Do(func() { close(f.stop) })
	<-f.done
}

func (f *follower) run() {
	defer close(f.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(f.cfg.RevocationPollInterval)
	defer t.Stop()
	for first := true; ; first = false {
		f.poll(ctx)
		if first {
			close(f.attempted)
		}
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
	}
}

// fresh reports whether the revocations known here are recent enough to trust a JWT
// without asking the server.
func (f *follower) fresh(now time.Time) bool {
	synced := f.syncedAt.Load()
	ok := synced != 0 && now.Sub(time.Unix(0, synced)) <= f.cfg.RevocationMaxLag
	if !ok && synced != 0 && !f.stale.Swap(true) {
		f.cfg.Logger.Warn("the revocation feed has not answered in time: JWTs are introspected until it does",
			"last_read", time.Unix(0, synced), "max_lag", f.cfg.RevocationMaxLag)
	}
	return ok
}

// revoked reports whether the grant or the token was revoked.
func (f *follower) revoked(grantID, tokenID string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, g := f.grants[grantID]
	_, t := f.tokens[tokenID]
	return g || t
}

// poll reads what was revoked since the last cursor. The time recorded as synced is
// when the request was sent: the answer holds every revocation made before then.
func (f *follower) poll(ctx context.Context) {
	f.polls.Add(1)
	sent := f.cfg.Now()
	// A poll that outlasts the interval would let the next one pile up behind it;
	// RevocationMaxLag turns the follower stale meanwhile anyway.
	timeout := min(f.cfg.IntrospectionTimeout, f.cfg.RevocationPollInterval)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	feed, err := f.read(ctx)
	if err != nil {
		if !errors.Is(ctx.Err(), context.Canceled) { // not stopped by Close
			f.cfg.Logger.Warn("reading the revocation feed failed", "err", err)
		}
		// A cursor the server refuses (400: it restarted with another format, or
		// the cursor is corrupt) would fail every poll: start again from every
		// retained entry, which the contract allows at any time.
		if se := (*statusError)(nil); errors.As(err, &se) && se.status == http.StatusBadRequest {
			f.mu.Lock()
			f.cursor = ""
			f.mu.Unlock()
		}
		return
	}
	f.apply(feed, sent)
	f.syncedAt.Store(sent.UnixNano())
	if f.stale.Swap(false) {
		f.cfg.Logger.Info("the revocation feed answers again: JWTs are verified locally")
	}
	select {
	case <-f.firstSync:
	default:
		close(f.firstSync)
	}
}

func (f *follower) read(ctx context.Context) (*revocationFeed, error) {
	u, err := url.Parse(f.cfg.RevocationsEndpoint)
	if err != nil {
		return nil, err
	}
	f.mu.RLock()
	if f.cursor != "" {
		q := u.Query()
		q.Set("since", f.cursor)
		u.RawQuery = q.Encode()
	}
	f.mu.RUnlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	setClientAuth(req, f.cfg)
	var feed revocationFeed
	if err := doJSONLimit(f.cfg.HTTPClient, req, &feed, maxFeedBytes); err != nil {
		return nil, fmt.Errorf("revocation feed at %s: %w", f.cfg.RevocationsEndpoint, err)
	}
	return &feed, nil
}

// apply records the entries (idempotently: the feed may repeat them), moves the
// cursor and forgets entries older than the retention, after which every token they
// could refuse has expired.
func (f *follower) apply(feed *revocationFeed, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if feed.Retention > 0 {
		f.retention = time.Duration(feed.Retention * float64(time.Second))
	}
	for _, r := range feed.Revocations {
		at := time.Unix(int64(r.At), 0)
		if r.GrantID != "" {
			f.grants[r.GrantID] = at
		}
		if r.TokenID != "" {
			f.tokens[r.TokenID] = at
		}
	}
	if feed.Cursor != "" {
		f.cursor = feed.Cursor
	}
	horizon := now.Add(-f.retention)
	for _, m := range []map[string]time.Time{f.grants, f.tokens} {
		for id, at := range m {
			if at.Before(horizon) {
				delete(m, id)
			}
		}
	}
}

// awaitFirst waits for the follower's first poll, so the first JWTs after a start
// need no introspection; a poll takes at most RevocationPollInterval. Once that poll
// has ended it never waits. It reports whether the feed has ever answered.
func (f *follower) awaitFirst(ctx context.Context) bool {
	select {
	case <-f.attempted:
	case <-ctx.Done():
	}
	select {
	case <-f.firstSync:
		return true
	default:
		return false
	}
}

// wait blocks until the first successful poll or ctx is done.
func (f *follower) wait(ctx context.Context) error {
	select {
	case <-f.firstSync:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: the revocation feed at %s has not answered: %v", ErrUnavailable, f.cfg.RevocationsEndpoint, ctx.Err())
	}
}

// Package cimd resolves OAuth Client ID Metadata Documents
// (draft-ietf-oauth-client-id-metadata-document; MCP authorization 2025-11-25 and
// later): a client uses an https URL as its client_id, and the authorization server
// fetches the client's metadata from that URL instead of holding a registration.
//
// Fetching a URL chosen by whoever starts a login is an SSRF hazard, so a Fetcher:
//   - accepts only Client Identifier URLs as the draft defines them (ValidateClientID);
//   - connects only to public addresses, checked on the resolved address at connect
//     time, so DNS rebinding cannot slip past (AllowPrivateAddresses relaxes this for
//     development);
//   - never follows redirects (the draft says MUST NOT), never uses a proxy from the
//     environment, reads at most 5 KiB (the draft's recommendation) within a 5 s
//     deadline, and accepts only a 200 response with a JSON media type;
//   - validates the document: client_id equal to the URL byte for byte, client_name,
//     redirect_uris, and no shared secrets or private keys.
//
// Valid documents are cached for as long as their HTTP cache headers allow, within
// bounds, in a size-bounded LRU; errors and invalid documents are never cached (the
// draft says MUST NOT). Concurrent requests for one URL share one fetch.
package cimd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxBytes      = 5 << 10 // draft §"Maximum Response Size": 5 kilobytes
	DefaultTimeout       = 5 * time.Second
	DefaultMinTTL        = time.Minute
	DefaultMaxTTL        = 24 * time.Hour
	DefaultTTL           = 5 * time.Minute
	DefaultMaxEntries    = 1000
	DefaultMaxConcurrent = 64
	DefaultUserAgent     = "mcpauth-cimd/1"
)

// Options configure a Fetcher. The zero value is the production configuration.
type Options struct {
	// AllowPrivateAddresses lets the Fetcher connect to loopback and private
	// addresses (127/8, ::1, RFC 1918, fc00::/7, 100.64/10). Development and tests
	// only: anyone who can start a login could make the server probe its own network.
	// Link-local (the cloud metadata service), multicast and other special-use
	// addresses stay refused.
	AllowPrivateAddresses bool
	// TLSClientConfig is used for the fetch (nil: system roots). Tests set RootCAs to
	// trust an httptest server.
	TLSClientConfig *tls.Config
	// Timeout bounds a whole fetch: connect, TLS, headers and body. Default 5s.
	Timeout time.Duration
	// MaxBytes is the largest document accepted. Default 5 KiB.
	MaxBytes int64
	// MinTTL raises shorter cache lifetimes, so a document asking for max-age=1 is not
	// fetched on every login. no-store, no-cache and already-stale responses are
	// still not cached. Default 1m.
	MinTTL time.Duration
	// MaxTTL caps cache lifetimes, so a changed document (a revoked redirect URI) is
	// seen within this time whatever its headers say. Default 24h.
	MaxTTL time.Duration
	// DefaultTTL is the lifetime of a response with no cache headers. Default 5m.
	DefaultTTL time.Duration
	// MaxEntries bounds the cache; the least recently used document goes first.
	// Default 1000.
	MaxEntries int
	// MaxConcurrent bounds fetches in flight for distinct URLs, so a flood of logins
	// with made-up client IDs cannot tie up unbounded connections. Default 64.
	MaxConcurrent int
	// UserAgent is sent with every fetch. Default "mcpauth-cimd/1".
	UserAgent string
	// Now is the clock for cache expiry. Default time.Now.
	Now func() time.Time
}

// Fetcher fetches, validates and caches Client ID Metadata Documents. It is safe for
// concurrent use.
type Fetcher struct {
	opts   Options
	client *http.Client

	mu       sync.Mutex
	cache    *lru
	inflight map[string]*call
}

// call is one fetch shared by every Fetch that asked for its URL meanwhile.
type call struct {
	done    chan struct{}
	doc     *Document
	err     error
	waiters int // how many Fetch calls share it; tests watch this
}

// New returns a Fetcher with opts, zero fields taking their defaults.
func New(opts Options) *Fetcher {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MinTTL <= 0 {
		opts.MinTTL = DefaultMinTTL
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = DefaultMaxTTL
	}
	if opts.DefaultTTL <= 0 {
		opts.DefaultTTL = DefaultTTL
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var tlsConfig *tls.Config
	if opts.TLSClientConfig != nil {
		tlsConfig = opts.TLSClientConfig.Clone()
	}
	dialer := &net.Dialer{Timeout: opts.Timeout, Control: dialControl(opts.AllowPrivateAddresses)}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would make the guard check the proxy, not the target
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    opts.Timeout,
		ResponseHeaderTimeout:  opts.Timeout,
		MaxResponseHeaderBytes: 16 << 10,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           16,
		IdleConnTimeout:        30 * time.Second,
	}
	return &Fetcher{
		opts: opts,
		client: &http.Client{
			Transport: transport,
			// Draft §"Client Information Discovery": MUST NOT automatically follow
			// redirects. The 3xx is returned as is and refused as a non-200.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		cache:    newLRU(opts.MaxEntries),
		inflight: map[string]*call{},
	}
}

// Fetch returns the validated metadata document for clientID, from the cache when it
// is fresh. Every error is an *Error (see the Err* kinds). The returned Document is
// the caller's own copy.
//
// If ctx ends first, Fetch returns at once with an error wrapping ctx.Err(), but the
// fetch itself goes on (within Timeout) for the other callers sharing it.
func (f *Fetcher) Fetch(ctx context.Context, clientID string) (*Document, error) {
	if err := ValidateClientID(clientID); err != nil {
		return nil, err
	}
	f.mu.Lock()
	if doc, ok := f.cache.get(clientID, f.opts.Now()); ok {
		f.mu.Unlock()
		return doc.clone(), nil
	}
	c, ok := f.inflight[clientID]
	if !ok {
		if err := ctx.Err(); err != nil { // nobody would wait for the fetch
			f.mu.Unlock()
			return nil, &Error{ClientID: clientID, Kind: ErrFetch, Reason: "request cancelled", Err: err}
		}
		if len(f.inflight) >= f.opts.MaxConcurrent {
			f.mu.Unlock()
			return nil, &Error{ClientID: clientID, Kind: ErrFetch, Reason: "the server is busy fetching other documents; try again"}
		}
		c = &call{done: make(chan struct{})}
		f.inflight[clientID] = c
		// The fetch runs apart from this caller, so that its cancellation does not
		// fail the others waiting; it keeps ctx's values (trace IDs) all the same.
		go f.run(context.WithoutCancel(ctx), clientID, c)
	}
	c.waiters++
	f.mu.Unlock()

	select {
	case <-c.done:
		if c.err != nil {
			return nil, c.err
		}
		return c.doc.clone(), nil
	case <-ctx.Done():
		return nil, &Error{ClientID: clientID, Kind: ErrFetch, Reason: "request cancelled", Err: ctx.Err()}
	}
}

// Invalidate drops clientID from the cache, so the next Fetch goes to the network:
// for instance when an authorization request names a redirect URI the cached
// document lacks, and the client may just have added it.
func (f *Fetcher) Invalidate(clientID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cache.remove(clientID)
}

func (f *Fetcher) run(ctx context.Context, clientID string, c *call) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	doc, ttl, err := f.fetch(ctx, clientID)

	f.mu.Lock()
	delete(f.inflight, clientID)
	if err == nil && ttl > 0 {
		f.cache.put(clientID, doc, f.opts.Now().Add(ttl))
	}
	c.doc, c.err = doc, err
	f.mu.Unlock()
	close(c.done)
}

// fetch does one GET and validates the response. ttl is 0 when it must not be cached.
func (f *Fetcher) fetch(ctx context.Context, clientID string) (doc *Document, ttl time.Duration, err error) {
	fail := func(kind error, reason string, cause error) (*Document, time.Duration, error) {
		return nil, 0, &Error{ClientID: clientID, Kind: kind, Reason: reason, Err: cause}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil)
	if err != nil {
		return fail(ErrInvalidClientID, "not a valid URL", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", f.opts.UserAgent)
	resp, err := f.client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, errForbiddenAddress):
			return fail(ErrForbiddenAddress, "the host resolves to a loopback, private or special-use address", err)
		case errors.Is(err, context.DeadlineExceeded):
			return fail(ErrFetch, fmt.Sprintf("timed out after %s", f.opts.Timeout), err)
		}
		return fail(ErrFetch, "the request failed", err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		reason := fmt.Sprintf("HTTP status %d (want 200)", resp.StatusCode)
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			reason = fmt.Sprintf("HTTP status %d: redirects are not followed", resp.StatusCode)
		}
		return fail(ErrFetch, reason, nil)
	}
	if !isJSON(resp.Header.Get("Content-Type")) {
		return fail(ErrFetch, fmt.Sprintf("content type %q is not JSON (want application/json)", truncate(resp.Header.Get("Content-Type"))), nil)
	}
	tooLarge := fmt.Sprintf("larger than %d bytes", f.opts.MaxBytes)
	if resp.ContentLength > f.opts.MaxBytes {
		return fail(ErrTooLarge, tooLarge, nil)
	}
	// Read one byte past the limit to tell "exactly at the limit" from "over it".
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.opts.MaxBytes+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail(ErrFetch, fmt.Sprintf("timed out after %s", f.opts.Timeout), err)
		}
		return fail(ErrFetch, "reading the response failed", err)
	}
	if int64(len(body)) > f.opts.MaxBytes {
		return fail(ErrTooLarge, tooLarge, nil)
	}
	doc, problems := parseDocument(body, clientID)
	if len(problems) > 0 {
		return fail(ErrInvalidDocument, strings.Join(problems, "; "), nil)
	}
	if ttl, ok := freshness(resp.Header, f.opts.Now(), f.opts.DefaultTTL); ok {
		return doc, min(max(ttl, f.opts.MinTTL), f.opts.MaxTTL), nil
	}
	return doc, 0, nil
}

// isJSON accepts application/json and application/<anything>+json (draft §"Client
// ID Metadata Document").
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

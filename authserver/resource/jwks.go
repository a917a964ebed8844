package resource

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits refuses RSA keys too short to trust (NIST SP 800-131A).
const minRSABits = 2048

// errUnknownKey is a token naming a key the authorization server does not publish.
var errUnknownKey = invalid("token is signed with a key the authorization server does not publish")

// keySet is the authorization server's JWKS, fetched on first use and kept in
// memory. Verifying a token costs no request: the set is refetched only when a token
// names an unknown kid (at most once per JWKSMinRefetchInterval, concurrent misses
// sharing one fetch, since a rotated-in key is published before it signs) and, in the
// background, when it is older than JWKSMaxAge (so a withdrawn key stops verifying).
type keySet struct {
	cfg  *Config
	disc *discovery

	keys atomic.Pointer[keyMap] // read without a lock on every request

	mu        sync.Mutex
	lastFetch time.Time     // start of the last fetch, successful or not
	lastMiss  time.Time     // start of the last fetch caused by an unknown kid
	fetching  chan struct{} // closed when the fetch in flight ends; nil when none
	fetchErr  error         // the last fetch's error
	fetches   atomic.Int32  // for tests
}

// keyMap is one fetched JWKS: its usable verification keys by kid, and when it was
// fetched.
type keyMap struct {
	byKID   map[string]*jose.JSONWebKey
	fetched time.Time
}

// key returns the verification key kid names. A miss refetches the set (rate-limited);
// a kid still unknown afterwards is errUnknownKey; a set that cannot be fetched at all
// is ErrUnavailable.
func (ks *keySet) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	if m := ks.keys.Load(); m != nil {
		if k, ok := m.byKID[kid]; ok {
			return k, nil
		}
	}
	if err := ks.refresh(ctx, true); err != nil {
		return nil, err
	}
	if k, ok := ks.keys.Load().byKID[kid]; ok {
		return k, nil
	}
	return nil, errUnknownKey
}

// has reports whether kid is still published, for verified tokens kept in a cache.
// A set older than JWKSMaxAge is refetched in the background meanwhile.
func (ks *keySet) has(ctx context.Context, kid string) bool {
	m := ks.keys.Load()
	if m == nil {
		return false
	}
	if ks.cfg.Now().Sub(m.fetched) > ks.cfg.JWKSMaxAge {
		_ = ks.refresh(ctx, false)
	}
	return m.byKID[kid] != nil
}

// refresh fetches the set, joining a fetch already in flight. miss says an unknown
// kid asks: such fetches run at most once per JWKSMinRefetchInterval (the first
// fetch does not count, so a key published just after it is found at once). With
// miss it waits for the fetch and returns its error (ErrUnavailable); otherwise the
// fetch runs in the background.
func (ks *keySet) refresh(ctx context.Context, miss bool) error {
	ks.mu.Lock()
	done := ks.fetching
	if done == nil {
		now := ks.cfg.Now()
		if miss && ks.keys.Load() != nil {
			if !ks.lastMiss.IsZero() && now.Sub(ks.lastMiss) < ks.cfg.JWKSMinRefetchInterval {
				ks.mu.Unlock()
				return nil // rate-limited: the caller sees the kid as unknown
			}
			ks.lastMiss = now
		}
		if !miss && now.Sub(ks.lastFetch) < ks.cfg.JWKSMinRefetchInterval {
			ks.mu.Unlock()
			return nil // a background refresh already ran lately (and failed)
		}
		if ks.keys.Load() == nil && ks.fetchErr != nil && now.Sub(ks.lastFetch) < time.Second {
			// Never fetched, and the last try just failed: do not hammer a server
			// that is down with one fetch per request.
			err := ks.fetchErr
			ks.mu.Unlock()
			return err
		}
		ks.lastFetch = now
		done = make(chan struct{})
		ks.fetching = done
		go ks.fetch(context.WithoutCancel(ctx), done)
	}
	ks.mu.Unlock()
	if !miss {
		return nil
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	// Even with an older set at hand, a failed fetch is the server's trouble, not the
	// token's: the kid may be a key published since, so the caller answers 503.
	return ks.fetchErr
}

// fetch reads the JWKS and replaces the set. A failed fetch keeps the old set: keys
// do not vanish because the server blinked.
func (ks *keySet) fetch(ctx context.Context, done chan struct{}) {
	ks.fetches.Add(1)
	m, err := ks.load(ctx)
	ks.mu.Lock()
	ks.fetchErr = err
	if err == nil {
		ks.keys.Store(m)
	} else {
		ks.cfg.Logger.WarnContext(ctx, "fetching the authorization server's JWKS failed", "err", err)
	}
	ks.fetching = nil
	ks.mu.Unlock()
	close(done)
}

func (ks *keySet) load(ctx context.Context) (*keyMap, error) {
	uri := ks.cfg.JWKSURI
	if uri == "" {
		meta, err := ks.disc.get(ctx)
		if err != nil {
			return nil, err
		}
		if meta.JWKSURI == "" {
			return nil, fmt.Errorf("%w: authorization server %s advertises no jwks_uri, so it issues no JWTs this resource can verify", ErrUnavailable, meta.Issuer)
		}
		uri = meta.JWKSURI
	}
	fetched := ks.cfg.Now()
	ctx, cancel := context.WithTimeout(ctx, ks.cfg.IntrospectionTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	var set jose.JSONWebKeySet
	if err := doJSON(ks.cfg.HTTPClient, req, &set); err != nil {
		return nil, fmt.Errorf("%w: JWKS at %s: %v", ErrUnavailable, uri, err)
	}
	m := &keyMap{byKID: make(map[string]*jose.JSONWebKey, len(set.Keys)), fetched: fetched}
	for i := range set.Keys {
		k := &set.Keys[i]
		if err := usableKey(k); err != nil {
			ks.cfg.Logger.WarnContext(ctx, "ignoring a key of the authorization server's JWKS", "kid", k.KeyID, "reason", err)
			continue
		}
		m.byKID[k.KeyID] = k
	}
	return m, nil
}

// usableKey accepts the public signature keys of the algorithms in jwtAlgorithms.
// A symmetric or private key in a JWKS is a mistake (or an attack) and never
// verifies anything here.
func usableKey(k *jose.JSONWebKey) error {
	switch {
	case k.KeyID == "":
		return errors.New("no kid")
	case k.Use != "" && k.Use != "sig":
		return fmt.Errorf("use %q is not sig", k.Use)
	case !k.IsPublic():
		return errors.New("not a public key")
	}
	switch pub := k.Key.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() || (k.Algorithm != "" && k.Algorithm != string(jose.ES256)) {
			return fmt.Errorf("EC key for %q on %s: only ES256 (P-256) is accepted", k.Algorithm, pub.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if pub.N.BitLen() < minRSABits || (k.Algorithm != "" && k.Algorithm != string(jose.RS256)) {
			return fmt.Errorf("RSA key of %d bits for %q: only RS256 with at least %d bits is accepted", pub.N.BitLen(), k.Algorithm, minRSABits)
		}
	default:
		return fmt.Errorf("key type %T is not accepted", k.Key)
	}
	return nil
}

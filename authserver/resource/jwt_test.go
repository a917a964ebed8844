package resource

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// newJWTVerifier is newTestVerifier following as's revocation feed, synced once.
func newJWTVerifier(t *testing.T, as *fakeAS, clock *fakeClock, edit func(*Config)) *Verifier {
	t.Helper()
	v := newTestVerifier(t, as, clock, edit)
	t.Cleanup(func() { _ = v.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return v
}

func TestJWTVerifiesLocally(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	es, rs := newKey(t, "es-1", jose.ES256), newKey(t, "rs-1", jose.RS256)
	as.publish(es, rs)
	v := newJWTVerifier(t, as, clock, nil)

	for _, k := range []*testKey{es, rs} {
		t.Run(string(k.alg)+" token", func(t *testing.T) {
			claims := as.claims(clock.Now(), func(c map[string]any) { c["aud"] = []string{"https://other.example.com", testResource} })
			tok := mint(t, k, claims)
			for range 3 {
				info, err := v.Verify(context.Background(), tok)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if info.Subject != "user-1" || info.ClientID != "client-1" || info.GrantID != "grant-1" || info.TokenID != claims["jti"] ||
					!slices.Equal(info.Scopes, []string{"mcp", "tools:read"}) || !info.JWT || info.Issuer != as.issuer ||
					!info.ExpiresAt.Equal(clock.Now().Add(15*time.Minute)) || len(info.Audience) != 2 {
					t.Errorf("Info = %v", info)
				}
			}
		})
	}
	if n := as.introspections.Load(); n != 0 {
		t.Errorf("%d introspections, want none: JWTs are verified locally", n)
	}
	if n := as.jwksFetches.Load(); n != 1 {
		t.Errorf("%d JWKS fetches, want 1", n)
	}
	if n := as.discoveries.Load(); n != 1 {
		t.Errorf("%d metadata fetches, want 1 (jwks_uri discovered once)", n)
	}
}

func TestJWTRefusals(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	key := newKey(t, "es-1", jose.ES256)
	unpublished := newKey(t, "es-1", jose.ES256) // same kid, another key
	as.publish(key)
	v := newJWTVerifier(t, as, clock, nil)
	now := clock.Now()
	claims := func(edit func(map[string]any)) map[string]any { return as.claims(now, edit) }
	pubJSON, _ := json.Marshal(key.public())

	tests := []struct {
		name   string
		token  string
		reason string
	}{
		{"a token for another audience", mint(t, key, claims(func(c map[string]any) { c["aud"] = "https://other.example.com/mcp" })), "another resource"},
		{"a token for this host's other path", mint(t, key, claims(func(c map[string]any) { c["aud"] = "https://mcp.example.com/other" })), "another resource"},
		{"a token with no audience", mint(t, key, claims(func(c map[string]any) { c["aud"] = nil })), "another resource"},
		{"a token from another issuer", mint(t, key, claims(func(c map[string]any) { c["iss"] = "https://evil.example.com" })), "does not trust"},
		{"an issuer differing by a trailing slash", mint(t, key, claims(func(c map[string]any) { c["iss"] = as.issuer + "/" })), "does not trust"},
		{"an expired token (beyond the leeway)", mint(t, key, claims(func(c map[string]any) { c["exp"] = now.Add(-11 * time.Second).Unix() })), "expired"},
		{"a token without exp", mint(t, key, claims(func(c map[string]any) { c["exp"] = nil })), "no exp"},
		{"a token whose nbf is in the future", mint(t, key, claims(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() })), "not valid yet"},
		{"an ID token (typ JWT)", mint(t, key, claims(nil), "JWT"), "typ"},
		{"a token without typ", mint(t, key, claims(nil), ""), "typ"},
		{"alg none", forge(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": "es-1"}, claims(nil), nil), "ES256 or RS256"},
		{"HS256 keyed with the published public key", forge(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "es-1"}, claims(nil), pubJSON), "ES256 or RS256"},
		{"a signature by an unpublished key under a published kid", mint(t, unpublished, claims(nil)), "signature"},
		{"a tampered payload", tamper(t, mint(t, key, claims(nil))), "signature"},
		{"a token without gid", mint(t, key, claims(func(c map[string]any) { c["gid"] = nil })), "gid"},
		{"a token without sub", mint(t, key, claims(func(c map[string]any) { c["sub"] = nil })), "sub"},
		{"a token without kid", mint(t, &testKey{alg: key.alg, priv: key.priv}, claims(nil)), "kid"},
		{"three dots of garbage", "a.b.c", "malformed JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			_, err := v.Verify(context.Background(), tt.token)
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Verify: %v, want ErrInvalidToken about %q", err, tt.reason)
			}
		})
	}
	t.Run("each refusal is a 401 invalid_token through Middleware", func(t *testing.T) {
		rec := serve(v.Middleware(okHandler), bearerRequest("/mcp", tests[0].token))
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("status %d, WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	})
	t.Run("a token expired within the leeway still verifies", func(t *testing.T) {
		tok := mint(t, key, claims(func(c map[string]any) { c["exp"] = now.Add(-5 * time.Second).Unix() }))
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})
	if n := as.introspections.Load(); n != 0 {
		t.Errorf("%d introspections, want none", n)
	}
}

// tamper changes the token's scope claim and keeps the signature.
func tamper(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	var c map[string]any
	b, _ := base64URLDecode(parts[1])
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	c["scope"] = "admin"
	forged := forge(t, map[string]any{}, c, nil)
	return parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
}

func TestACachedJWTExpires(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	key := newKey(t, "es-1", jose.ES256)
	as.publish(key)
	v := newJWTVerifier(t, as, clock, func(c *Config) { c.RevocationMaxLag = time.Hour })
	tok := mint(t, key, as.claims(clock.Now(), func(c map[string]any) { c["exp"] = clock.Now().Add(time.Minute).Unix() }))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute + 10*time.Second)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify after exp + leeway: %v, want ErrInvalidToken", err)
	}
}

func TestUnknownKeyRefetchesTheJWKS(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	k1, k2, k3 := newKey(t, "k1", jose.ES256), newKey(t, "k2", jose.ES256), newKey(t, "k3", jose.RS256)
	as.publish(k1)
	v := newJWTVerifier(t, as, clock, func(c *Config) { c.RevocationMaxLag = time.Hour })
	verify := func(k *testKey) error {
		_, err := v.Verify(context.Background(), mint(t, k, as.claims(clock.Now(), nil)))
		return err
	}
	if err := verify(k1); err != nil {
		t.Fatal(err)
	}

	// k2 is published after the first fetch, as a rotation publishes a key before it signs.
	as.publish(k1, k2)
	if err := verify(k2); err != nil {
		t.Fatalf("a token of a newly published key: %v", err)
	}
	if n := as.jwksFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2: one at first use, one for the unknown kid", n)
	}

	// Within the refetch interval an unknown kid costs nothing and is refused, even
	// once the key is published.
	if err := verify(k3); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "does not publish") {
		t.Fatalf("an unpublished key: %v, want ErrInvalidToken", err)
	}
	as.publish(k1, k2, k3)
	clock.advance(9 * time.Second)
	if err := verify(k3); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("within the refetch interval: %v, want ErrInvalidToken", err)
	}
	if n := as.jwksFetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want still 2 within the refetch interval", n)
	}

	// After it, concurrent misses share one fetch.
	clock.advance(time.Second)
	tok := mint(t, k3, as.claims(clock.Now(), nil))
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() { _, err := v.Verify(context.Background(), tok); errs <- err })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify after the refetch interval: %v", err)
		}
	}
	if n := as.jwksFetches.Load(); n != 3 {
		t.Errorf("%d JWKS fetches, want 3: 20 concurrent misses share one", n)
	}
}

func TestKeyRotation(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	oldKey, newKey := newKey(t, "2026-10", jose.ES256), newKey(t, "2026-11", jose.ES256)
	as.publish(oldKey)
	v := newJWTVerifier(t, as, clock, func(c *Config) { c.RevocationMaxLag = time.Hour })
	before := mint(t, oldKey, as.claims(clock.Now(), nil))
	if _, err := v.Verify(context.Background(), before); err != nil {
		t.Fatal(err)
	}

	// The rotation: the new key is published beside the old, then signs.
	as.publish(oldKey, newKey)
	clock.advance(time.Minute)
	after := mint(t, newKey, as.claims(clock.Now(), nil))
	for name, tok := range map[string]string{"before": before, "after": after} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("a token from %s the rotation: %v", name, err)
		}
	}

	// The old key is withdrawn; the next fetch (the JWKS's max age) drops it, and its
	// tokens fail although one was cached as verified.
	as.publish(newKey)
	clock.advance(DefaultJWKSMaxAge + time.Second)
	_, _ = v.Verify(context.Background(), after) // an old set triggers a background refetch
	waitFor(t, func() bool { return as.jwksFetches.Load() == 3 && !v.keys.has(context.Background(), oldKey.kid) })
	if _, err := v.Verify(context.Background(), before); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a token of a key gone from the JWKS: %v, want ErrInvalidToken", err)
	}
	if _, err := v.Verify(context.Background(), after); err != nil {
		t.Errorf("a token of the current key: %v", err)
	}
}

func TestJWKSKeysThatAreIgnored(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	good := newKey(t, "good", jose.ES256)
	private := newKey(t, "private", jose.ES256)
	mislabelled := newKey(t, "mislabelled", jose.ES256)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		good.public(),
		{Key: private.priv, KeyID: private.kid, Algorithm: "ES256", Use: "sig"},
		{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac", Algorithm: "HS256", Use: "sig"},
		{Key: mislabelled.priv.Public(), KeyID: mislabelled.kid, Algorithm: "RS256", Use: "sig"},
		{Key: good.priv.Public(), KeyID: "enc", Use: "enc"},
	}}
	as.publishRaw(set)
	v := newJWTVerifier(t, as, clock, nil)
	if _, err := v.Verify(context.Background(), mint(t, good, as.claims(clock.Now(), nil))); err != nil {
		t.Fatalf("the good key: %v", err)
	}
	for _, kid := range []string{"private", "hmac", "mislabelled", "enc"} {
		if v.keys.has(context.Background(), kid) {
			t.Errorf("key %q was accepted into the key set", kid)
		}
	}
	if _, err := v.Verify(context.Background(), mint(t, private, as.claims(clock.Now(), nil))); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a token of a key published with its private part: %v, want ErrInvalidToken", err)
	}
}

func TestJWKSUnreachableIs503(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	key := newKey(t, "k", jose.ES256)
	as.publish(key)
	v := newJWTVerifier(t, as, clock, func(c *Config) { c.JWKSURI = as.issuer + "/missing" })
	_, err := v.Verify(context.Background(), mint(t, key, as.claims(clock.Now(), nil)))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Verify with no JWKS: %v, want ErrUnavailable", err)
	}
	rec := serve(v.Middleware(okHandler), bearerRequest("/mcp", mint(t, key, as.claims(clock.Now(), nil))))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
}

func TestUpstreamTokenOfAJWT(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	key := newKey(t, "k", jose.ES256)
	as.publish(key)
	v := newJWTVerifier(t, as, clock, nil)
	tok := mint(t, key, as.claims(clock.Now(), nil))
	as.set(tok, clock.Now(), nil) // the server introspects its JWTs too
	info, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if info.UpstreamAccessToken != "" || as.introspections.Load() != 0 {
		t.Fatalf("a locally verified JWT carries an upstream token or was introspected")
	}
	for range 2 {
		up, _, err := v.UpstreamToken(context.Background(), info)
		if err != nil || up != "upstream-"+tok {
			t.Errorf("UpstreamToken = %q, %v", up, err)
		}
	}
	if n := as.introspections.Load(); n != 1 {
		t.Errorf("%d introspections, want 1 (cached)", n)
	}
	if strings.Contains(info.String(), tok) {
		t.Error("Info prints its token")
	}
}

func base64URLDecode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}

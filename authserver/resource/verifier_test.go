package resource

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestIntrospectionCache(t *testing.T) {
	tests := []struct {
		name string
		// answer edits the introspection answer for "tok"; nil: the token is unknown.
		answer func(now time.Time) func(map[string]any)
		cfg    func(*Config)
		// steps advance the clock and verify again; asked is the number of
		// introspections expected after each step.
		steps []step
	}{
		{
			name:   "an active token is introspected once within the cache TTL, and again after it",
			answer: func(time.Time) func(map[string]any) { return nil },
			steps: []step{
				{after: 0, asked: 1, valid: true},
				{after: 29 * time.Second, asked: 1, valid: true},
				{after: 2 * time.Second, asked: 2, valid: true},
			},
		},
		{
			name: "the cache never outlives the token's exp",
			answer: func(now time.Time) func(map[string]any) {
				return func(a map[string]any) { a["exp"] = now.Add(10 * time.Second).Unix() }
			},
			steps: []step{
				{after: 0, asked: 1, valid: true},
				{after: 9 * time.Second, asked: 1, valid: true},
				{after: time.Second, asked: 2, valid: false},
			},
		},
		{
			name: "the cache never outlives the upstream token, so tools get the refreshed one",
			answer: func(now time.Time) func(map[string]any) {
				return func(a map[string]any) { a["upstream_token_expires_at"] = now.Add(8 * time.Second).Unix() }
			},
			steps: []step{
				{after: 0, asked: 1, valid: true},
				{after: 7 * time.Second, asked: 1, valid: true},
				{after: time.Second, asked: 2, valid: true},
			},
		},
		{
			name:   "an inactive token is remembered briefly",
			answer: nil,
			steps: []step{
				{after: 0, asked: 1, valid: false},
				{after: 4 * time.Second, asked: 1, valid: false},
				{after: time.Second, asked: 2, valid: false},
			},
		},
		{
			name:   "caching can be turned off",
			answer: func(time.Time) func(map[string]any) { return nil },
			cfg:    func(c *Config) { c.CacheTTL, c.NegativeCacheTTL = -1, -1 },
			steps: []step{
				{after: 0, asked: 1, valid: true},
				{after: 0, asked: 2, valid: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			clock := newClock()
			if tt.answer != nil {
				as.set("tok", clock.Now(), tt.answer(clock.Now()))
			}
			v := newTestVerifier(t, as, clock, tt.cfg)
			for i, s := range tt.steps {
				clock.advance(s.after)
				_, err := v.Verify(context.Background(), "tok")
				if (err == nil) != s.valid {
					t.Errorf("step %d: Verify error %v, want valid=%v", i, err, s.valid)
				}
				if got := as.introspections.Load(); got != s.asked {
					t.Errorf("step %d: %d introspections, want %d", i, got, s.asked)
				}
			}
		})
	}
}

type step struct {
	after time.Duration
	asked int32
	valid bool
}

func TestFailuresAreNotCached(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	as.set("tok", clock.Now(), nil)
	v := newTestVerifier(t, as, clock, nil)

	as.setStatus(http.StatusBadGateway)
	if _, err := v.Verify(context.Background(), "tok"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Verify while the server fails: %v, want ErrUnavailable", err)
	}
	as.setStatus(0)
	if _, err := v.Verify(context.Background(), "tok"); err != nil {
		t.Fatalf("Verify once the server is back: %v", err)
	}
	if got := as.introspections.Load(); got != 2 {
		t.Errorf("%d introspections, want 2", got)
	}
}

func TestCacheIsBounded(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	v := newTestVerifier(t, as, clock, func(c *Config) { c.CacheMaxEntries = 2 })
	for _, tok := range []string{"a", "b", "c", "a"} {
		as.set(tok, clock.Now(), nil)
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.positive.len(); got != 2 {
		t.Errorf("cache holds %d entries, want 2", got)
	}
	// "a" was the least recently used when "c" arrived, so it was asked about again.
	if got := as.introspections.Load(); got != 4 {
		t.Errorf("%d introspections, want 4", got)
	}
}

func TestConcurrentVerificationsShareOneIntrospection(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	as.set("tok", clock.Now(), nil)
	release := sync.OnceFunc(blockIntrospection(t, as))
	v := newTestVerifier(t, as, clock, nil)

	const n = 10
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), "tok")
			errs <- err
		})
	}
	// Release the authorization server only once every caller waits on the flight.
	waitFor(t, func() bool { return v.flights.waiting(keyOf("tok")) == n })
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	if got := as.introspections.Load(); got != 1 {
		t.Errorf("%d introspections for %d concurrent requests, want 1", got, n)
	}
}

func TestACallerGivingUpDoesNotFailTheOthers(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	as.set("tok", clock.Now(), nil)
	release := sync.OnceFunc(blockIntrospection(t, as))
	v := newTestVerifier(t, as, clock, nil)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := v.Verify(ctx, "tok"); first <- err }()
	waitFor(t, func() bool { return v.flights.waiting(keyOf("tok")) == 1 })
	second := make(chan error, 1)
	go func() { _, err := v.Verify(context.Background(), "tok"); second <- err }()
	waitFor(t, func() bool { return v.flights.waiting(keyOf("tok")) == 2 })

	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("the caller that gave up got %v, want context.Canceled", err)
	}
	release()
	if err := <-second; err != nil {
		t.Errorf("the caller still waiting got %v", err)
	}
}

func TestIntrospectionRequest(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	as.set("tok", clock.Now(), nil)
	v := newTestVerifier(t, as, clock, nil)
	if _, err := v.Verify(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
	as.mu.Lock()
	r, form := as.lastReq, as.lastForm
	as.mu.Unlock()

	// RFC 6749 §2.3.1: both halves form-encoded, then joined and base64-encoded.
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("mcp%3Aserver:s3cr%25t%3Ax+y%2Bz"))
	checks := []struct{ what, got, want string }{
		{"method", r.Method, http.MethodPost},
		{"Content-Type", r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"},
		{"Authorization", r.Header.Get("Authorization"), wantAuth},
		{"token", form.Get("token"), "tok"},
		{"token_type_hint", form.Get("token_type_hint"), "access_token"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("introspection %s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

func TestIntrospectionEndpointDiscovery(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	v := newTestVerifier(t, as, clock, func(c *Config) { c.IntrospectionEndpoint = "" })

	t.Run("a wrong issuer in the metadata is refused and not remembered", func(t *testing.T) {
		as.mu.Lock()
		as.metaIssuer = as.issuer + "/other"
		as.mu.Unlock()
		as.set("tok", clock.Now(), nil)
		_, err := v.Verify(context.Background(), "tok")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "names issuer") {
			t.Errorf("Verify: %v, want ErrUnavailable about the issuer", err)
		}
		as.mu.Lock()
		as.metaIssuer = ""
		as.mu.Unlock()
	})
	t.Run("the endpoint is discovered once from the metadata", func(t *testing.T) {
		before := as.discoveries.Load()
		for i := range 3 {
			tok := fmt.Sprintf("tok-%d", i)
			as.set(tok, clock.Now(), nil)
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		}
		if got := as.discoveries.Load() - before; got != 1 {
			t.Errorf("%d discoveries, want 1", got)
		}
	})
}

func TestMetadataURLForIssuerWithPath(t *testing.T) {
	tests := []struct{ issuer, want string }{
		{"https://auth.example.com", "https://auth.example.com/.well-known/oauth-authorization-server"},
		{"https://auth.example.com/", "https://auth.example.com/.well-known/oauth-authorization-server"},
		{"https://auth.example.com/tenant/a", "https://auth.example.com/.well-known/oauth-authorization-server/tenant/a"},
	}
	for _, tt := range tests {
		t.Run("the well-known suffix goes before the path of "+tt.issuer, func(t *testing.T) {
			if got, err := metadataURL(tt.issuer); err != nil || got != tt.want {
				t.Errorf("metadataURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestInfoDoesNotPrintTheUpstreamToken(t *testing.T) {
	info := &Info{Subject: "user-1", UpstreamAccessToken: "gho_secret"}
	for _, s := range []string{fmt.Sprint(info), fmt.Sprintf("%v", info), info.LogValue().String()} {
		if strings.Contains(s, "gho_secret") || !strings.Contains(s, "user-1") {
			t.Errorf("printed Info %q", s)
		}
	}
}

// blockIntrospection makes the fake server hold introspection requests until the
// returned function is called, which also happens when the test ends (a failed test
// must not leave the server's Close waiting on held requests).
func blockIntrospection(t *testing.T, as *fakeAS) func() {
	release := make(chan struct{})
	as.mu.Lock()
	as.block = release
	as.mu.Unlock()
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock)
	return unblock
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

package memory

import (
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/storetest"
)

// fakeClock is a clock that moves only when told, so the expiry tests take no time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness makes every store of the run a tenant of one database on one fake clock,
// as the Redis tests share one server, so that tenant isolation is tested for real.
func harness(t *testing.T) storetest.Harness {
	clock := newFakeClock()
	db := New(Options{Now: clock.Now, RevocationRetention: time.Minute})
	t.Cleanup(func() { db.Close() })
	return storetest.Harness{
		NewStore:            func(t *testing.T, prefix string) store.Store { return db.WithPrefix(prefix) },
		Now:                 clock.Now,
		Wait:                clock.Advance,
		RevocationRetention: time.Minute,
	}
}

func TestStore(t *testing.T) {
	storetest.RunTests(t, harness(t))
	storetest.RunConcurrencyTests(t, harness(t))
}

func TestSweepDeletesExpiredRecords(t *testing.T) {
	clock := newFakeClock()
	s := New(Options{Prefix: "p", Now: clock.Now, JanitorInterval: -1})
	defer s.Close()
	ctx := t.Context()
	exp := clock.Now().Add(time.Minute)
	long := clock.Now().Add(time.Hour)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.CreateClient(ctx, store.Client{ID: "c", ExpiresAt: exp}))
	must(s.SavePending(ctx, "state", store.PendingAuthorization{ExpiresAt: exp}))
	must(s.PutUpstreamToken(ctx, "u", store.UpstreamToken{}, time.Minute))
	must(s.SaveCode(ctx, "g1", "code", store.AuthorizationCode{ExpiresAt: exp}))
	must(s.SaveCode(ctx, "g2", "code", store.AuthorizationCode{ExpiresAt: exp}))
	must(s.RedeemCode(ctx, "g2", "code", store.Grant{ID: "g2", ExpiresAt: long}, store.TokenPair{
		AccessHash: "at", Access: store.Token{ExpiresAt: exp},
		RefreshHash: "rt", Refresh: store.Token{ExpiresAt: long},
	}))
	// A rotation whose successor is kept for a minute, beside a marker that lives on.
	_, err := s.RotateRefreshToken(ctx, "g2", "rt", store.TokenPair{
		AccessHash: "at2", Access: store.Token{ExpiresAt: long},
		RefreshHash: "rt2", Refresh: store.Token{ExpiresAt: long},
	}, store.Successor{ClientID: "c", Sealed: []byte("sealed"), Until: exp})
	must(err)
	if ok, err := s.AcquireLease(ctx, "lease", time.Minute); !ok || err != nil {
		t.Fatalf("AcquireLease: %v, %v", ok, err)
	}

	clock.Advance(2 * time.Minute)
	s.db.sweep()

	if n := len(s.db.clients) + len(s.db.pending) + len(s.db.upstream) + len(s.db.leases); n != 0 {
		t.Errorf("%d expired clients, pending authorizations, upstream tokens or leases left after a sweep", n)
	}
	if _, ok := s.db.grants[s.key("g1")]; ok {
		t.Error("a grant whose every record expired was left after a sweep")
	}
	g2 := s.db.grants[s.key("g2")]
	if g2 == nil {
		t.Fatal("a grant with live records was swept")
	}
	if _, ok := g2.access["at"]; ok || len(g2.codes) != 0 || len(g2.access) != 1 {
		t.Errorf("expired code or access token left in a live grant, or a live one swept: %d codes, access tokens %v", len(g2.codes), g2.access)
	}
	if len(g2.refresh) != 2 || g2.grant == nil {
		t.Errorf("a live record was swept: %d refresh tokens and markers, grant %v", len(g2.refresh), g2.grant)
	}
	if e := g2.refresh["rt"]; e == nil || !e.rotated || e.succ != nil {
		t.Errorf("the rotated token's marker after its window: %+v; want the marker without its successor", e)
	}
}

func TestJanitorRunsUntilClose(t *testing.T) {
	clock := newFakeClock()
	s := New(Options{Now: clock.Now, JanitorInterval: time.Millisecond})
	if err := s.CreateClient(t.Context(), store.Client{ID: "c", ExpiresAt: clock.Now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.db.mu.Lock()
		n := len(s.db.clients)
		s.db.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the janitor did not delete an expired client")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.db.stopped:
	default:
		t.Fatal("Close returned with the janitor still running")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStoredSlicesAreCopies(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ctx := t.Context()
	uris := []string{"https://a.example/cb"}
	if err := s.CreateClient(ctx, store.Client{ID: "c", RedirectURIs: uris, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	uris[0] = "https://evil.example/cb"
	got, err := s.GetClient(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	got.RedirectURIs[0] = "https://evil.example/cb"
	again, _ := s.GetClient(ctx, "c")
	if again.RedirectURIs[0] != "https://a.example/cb" {
		t.Errorf("stored redirect URI changed through a caller's slice: %q", again.RedirectURIs[0])
	}
}

package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/storetest"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// harness makes stores with opts, each under the prefix the suite asks for, all on the
// same Redis.
func harness(opts Options) storetest.Harness {
	return storetest.Harness{
		RevocationRetention: feedRetention,
		NewStore: func(t *testing.T, prefix string) store.Store {
			o := opts
			o.Prefix = prefix
			o.RevocationRetention = feedRetention
			s, err := New(t.Context(), o)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return s
		},
	}
}

// feedRetention is short so that the retention test, which waits past it on the real
// clock, stays quick.
const feedRetention = 2 * time.Second

// The three topologies run in parallel: most of their time is waiting for records
// to expire.

func TestStandalone(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	h := harness(Options{Addrs: []string{srv.Addr}})
	storetest.RunTests(t, h)
	storetest.RunConcurrencyTests(t, h)
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	sentinel := redisserver.StartSentinel(t, redisserver.Start(t))
	h := harness(Options{Addrs: []string{sentinel.Addr}, MasterName: sentinel.MasterName})
	storetest.RunTests(t, h)
	storetest.RunConcurrencyTests(t, h)
}

// TestCluster runs the suite on a three-master Redis Cluster, where a script touching
// keys of two slots fails with CROSSSLOT: passing shows the hash tags keep every
// operation on one slot.
func TestCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	cluster := redisserver.StartCluster(t, 3)
	h := harness(Options{Addrs: cluster.Addrs})
	storetest.RunTests(t, h)
	storetest.RunConcurrencyTests(t, h)

	t.Run("Ping checks the eviction policy of every node", func(t *testing.T) {
		s := openStore(t, Options{Addrs: cluster.Addrs})
		node := goredis.NewClient(&goredis.Options{Addr: cluster.Addrs[2]})
		defer node.Close()
		if err := node.ConfigSet(t.Context(), "maxmemory-policy", "volatile-lru").Err(); err != nil {
			t.Fatal(err)
		}
		defer node.ConfigSet(context.Background(), "maxmemory-policy", "noeviction")
		err := s.Ping(t.Context())
		if !errors.Is(err, ErrEvictionPolicy) || !strings.Contains(err.Error(), cluster.Addrs[2]) {
			t.Fatalf("Ping with one node on volatile-lru: got %v, want ErrEvictionPolicy naming %s", err, cluster.Addrs[2])
		}
	})
}

func openStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = "test"
	}
	s, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPingRefusesEvictingPolicy(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t, redisserver.Options{MaxMemoryPolicy: "allkeys-lru"})
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	err := s.Ping(t.Context())
	if !errors.Is(err, ErrEvictionPolicy) {
		t.Fatalf("Ping: got %v, want ErrEvictionPolicy", err)
	}
	for _, want := range []string{`"allkeys-lru"`, srv.Addr, "noeviction"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Ping error %q does not mention %s", err, want)
		}
	}
	if errors.Is(err, store.ErrUnavailable) {
		t.Errorf("a wrong policy is a configuration error, not ErrUnavailable: %v", err)
	}

	skip := openStore(t, Options{Addrs: []string{srv.Addr}, SkipEvictionPolicyCheck: true})
	if err := skip.Ping(t.Context()); err != nil {
		t.Errorf("Ping with SkipEvictionPolicyCheck: %v", err)
	}
}

func TestPingExplainsDisabledConfig(t *testing.T) {
	t.Parallel()
	// Managed services rename or block CONFIG; an empty name disables it.
	srv := redisserver.Start(t, redisserver.Options{Args: []string{"--rename-command", "CONFIG", ""}})
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	err := s.Ping(t.Context())
	if err == nil {
		t.Fatal("Ping succeeded although the eviction policy could not be read")
	}
	for _, want := range []string{"CONFIG GET is refused", "managed", "SkipEvictionPolicyCheck"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Ping error %q does not mention %q", err, want)
		}
	}
}

// TestUnreachable: New must not fail while Redis is down (the server starts and
// reports not-ready), and every operation must say ErrUnavailable, not ErrNotFound.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	srv.Stop()

	// go-redis retries a refused dial for about two seconds by default; New's
	// context cuts its script loading short.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	s, err := New(ctx, Options{Addrs: []string{srv.Addr}, Prefix: "down"})
	if err != nil {
		t.Fatalf("New with Redis down: %v", err)
	}
	s.Close()

	// A client that does not retry, so each operation meets the refused connection
	// itself, fast.
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetryTimeout: time.Millisecond})
	defer rdb.Close()
	s, err = NewFromClient(rdb, Options{Prefix: "down"})
	if err != nil {
		t.Fatal(err)
	}
	ctx = t.Context()
	checks := map[string]error{
		"Ping":           s.Ping(ctx),
		"GetAccessToken": func() error { _, err := s.GetAccessToken(ctx, "g", "h"); return err }(),
		"RedeemCode":     s.RedeemCode(ctx, "g", "h", store.Grant{}, store.TokenPair{AccessHash: "a"}),
		"TakePending":    func() error { _, err := s.TakePending(ctx, "h"); return err }(),
		"CountClients":   func() error { _, err := s.CountClients(ctx); return err }(),
		"IssueGrant": s.IssueGrant(ctx, store.Grant{ID: "g", ExpiresAt: time.Now().Add(time.Hour)},
			store.TokenPair{AccessHash: "a", Access: store.Token{ExpiresAt: time.Now().Add(time.Hour)}}),
		"SaveDevice": s.SaveDevice(ctx, store.DeviceRef{GrantID: "g", DeviceHash: "d"}, "u",
			store.DeviceAuthorization{ExpiresAt: time.Now().Add(time.Hour)}, time.Second),
		"GetUserCode":  func() error { _, _, err := s.GetUserCode(ctx, "u"); return err }(),
		"TakeUserCode": func() error { _, _, err := s.TakeUserCode(ctx, "u"); return err }(),
		"DenyDevice":   s.DenyDevice(ctx, store.DeviceRef{GrantID: "g", DeviceHash: "d"}),
		"PollDevice":   func() error { _, err := s.PollDevice(ctx, store.DeviceRef{GrantID: "g", DeviceHash: "d"}); return err }(),
	}
	for op, err := range checks {
		var netErr net.Error
		if !errors.Is(err, store.ErrUnavailable) || !errors.As(err, &netErr) {
			t.Errorf("%s with Redis down: got %v, want ErrUnavailable wrapping the network error", op, err)
		}
	}
}

func TestInvalidOptions(t *testing.T) {
	ctx := t.Context()
	for name, opts := range map[string]Options{
		"no address":            {Prefix: "p"},
		"no prefix":             {Addrs: []string{"127.0.0.1:1"}},
		"a brace in the prefix": {Addrs: []string{"127.0.0.1:1"}, Prefix: "p{x}"},
	} {
		if _, err := New(ctx, opts); err == nil {
			t.Errorf("New with %s succeeded", name)
		}
	}
	s, err := NewFromClient(goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"}), Options{Prefix: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCode(ctx, "g}x", "h", store.AuthorizationCode{}); err == nil || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("SaveCode with a brace in the grant ID: got %v, want a validation error", err)
	}
}

// flow exercises every kind of key the store writes and returns the grant's ID.
func flow(t *testing.T, s *Store) string {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	exp := now.Add(time.Hour)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tok := func() store.Token { return store.Token{GrantID: "g1", IssuedAt: now, ExpiresAt: exp} }
	must(s.CreateClientLimited(ctx, store.Client{ID: "c1", Source: "192.0.2.1", ExpiresAt: exp}, 20))
	_, err := s.RequestApproval(ctx, store.ClientApproval{ClientID: "c1", Status: store.ApprovalPending, ExpiresAt: exp})
	must(err)
	must(s.SavePending(ctx, "state", store.PendingAuthorization{ExpiresAt: exp}))
	must(s.PutUpstreamToken(ctx, "u1", store.UpstreamToken{Ciphertext: []byte("x")}, time.Hour))
	must(s.SaveCode(ctx, "g1", "code", store.AuthorizationCode{ExpiresAt: now.Add(time.Minute)}))
	must(s.RedeemCode(ctx, "g1", "code", store.Grant{ID: "g1", UserID: "u1", ExpiresAt: exp},
		store.TokenPair{AccessHash: "at1", Access: tok(), RefreshHash: "rt1", Refresh: tok(),
			ClientUse: &store.ClientUse{ClientID: "c1", Source: "192.0.2.1", LastUsedAt: now, ExpiresAt: exp}}))
	_, err = s.RotateRefreshToken(ctx, "g1", "rt1",
		store.TokenPair{AccessHash: "at2", Access: tok(), RefreshHash: "rt2", Refresh: tok()},
		store.Successor{ClientID: "c1", Sealed: []byte("sealed"), Until: now.Add(time.Minute)})
	must(err)
	if ok, err := s.AcquireLease(ctx, "upstream:u1", time.Minute); !ok || err != nil {
		t.Fatalf("AcquireLease: %v, %v", ok, err)
	}
	must(s.SaveCode(ctx, "g2", "code", store.AuthorizationCode{ExpiresAt: now.Add(time.Minute)}))
	must(s.RevokeGrant(ctx, "g2"))
	must(s.RevokeTokenID(ctx, "g1", "jti1", exp))
	must(s.IssueGrant(ctx, store.Grant{ID: "g3", ClientID: "c1", ExpiresAt: exp},
		store.TokenPair{AccessHash: "at3", Access: store.Token{GrantID: "g3", IssuedAt: now, ExpiresAt: exp}}))
	ref := store.DeviceRef{GrantID: "g4", DeviceHash: "dev"}
	must(s.SaveDevice(ctx, ref, "ucode", store.DeviceAuthorization{ClientID: "c1", ExpiresAt: now.Add(time.Minute)}, time.Second))
	_, err = s.PollDevice(ctx, ref)
	must(err)
	must(s.DenyDevice(ctx, ref))
	// A callback's login (saveLoginScript): g5's code and keys set, u2's upstream token.
	must(s.SaveLogin(ctx, store.Login{UserID: "u2", Upstream: store.UpstreamToken{Ciphertext: []byte("y")},
		UpstreamTTL: time.Hour, GrantID: "g5", CodeHash: "code", Code: store.AuthorizationCode{ExpiresAt: now.Add(time.Minute)}}))
	return "g1"
}

// TestEveryKeyHasATTL: with noeviction, a key without a TTL would stay forever.
func TestEveryKeyHasATTL(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}, Prefix: "ttl"})
	flow(t, s)
	ctx := t.Context()
	all, err := s.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	// client, index, its source's index, approval, approvals index, pending,
	// upstream, lease, revocation feed; g1: code marker, grant, at1, rt1 marker, rt1's
	// successor, at2, rt2, keys set, jti mark; g2: revocation marker; g1's user,
	// client and tenant indexes; g3 (client_credentials): grant, access token, keys
	// set, client c1's index; g4 (device): user code, device, polling state; g5
	// (SaveLogin): code, keys set, and u2's upstream token.
	if len(all) != 32 {
		t.Errorf("flow wrote %d keys, want 32: %v", len(all), all)
	}
	for _, k := range all {
		if !strings.HasPrefix(k, "ttl:") {
			t.Errorf("key %q lacks the tenant prefix", k)
		}
		pttl, err := s.rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if pttl <= 0 || pttl > time.Hour {
			t.Errorf("key %q has TTL %v, want one in (0, 1h]", k, pttl)
		}
	}
	// The revocation marker lives as long as the revoked grant's code would have.
	if pttl := s.rdb.PTTL(ctx, s.k.grant("g2").revoked()).Val(); pttl <= 0 || pttl > time.Minute {
		t.Errorf("revocation marker TTL %v, want the code's minute", pttl)
	}
}

// TestExpiresAtBeatsALingeringKey: reads check ExpiresAt too, so a key that outlives
// its record (a clock step on the server, a TTL changed by hand) is still not served.
func TestExpiresAtBeatsALingeringKey(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := s.SaveCode(ctx, "g", "code", store.AuthorizationCode{ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.RedeemCode(ctx, "g", "code", store.Grant{ID: "g", ExpiresAt: exp},
		store.TokenPair{AccessHash: "at", Access: store.Token{ExpiresAt: exp}}); err != nil {
		t.Fatal(err)
	}
	stale, _ := encode(store.Token{ExpiresAt: time.Now().Add(-time.Second)})
	if err := s.rdb.Set(ctx, s.k.grant("g").access("at"), stale, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccessToken(ctx, "g", "at"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetAccessToken of a token past its ExpiresAt: got %v, want ErrNotFound", err)
	}
}

// roundTrips counts the commands and pipelines go-redis sends: each is one round trip.
type roundTrips struct {
	mu  sync.Mutex
	n   int
	cmd []string
}

func (r *roundTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (r *roundTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		r.mu.Lock()
		r.n++
		r.cmd = append(r.cmd, cmd.Name())
		r.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		r.mu.Lock()
		r.n++
		r.cmd = append(r.cmd, "pipeline")
		r.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (r *roundTrips) reset() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd, n := r.cmd, r.n
	r.cmd, r.n = nil, 0
	return cmd, n
}

// TestRoundTrips pins the cost of each hot operation: introspection is one GET, and
// redemption and rotation one script each, from the first call on (New loads the
// scripts).
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	ctx := t.Context()
	if err := s.Ping(ctx); err != nil { // open a connection outside the count
		t.Fatal(err)
	}
	// go-redis sends a HELLO with the first pipeline of a client; keep it out of the count.
	if _, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error { return p.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	counter := &roundTrips{}
	s.rdb.AddHook(counter)

	exp := time.Now().Add(time.Hour)
	tok := store.Token{GrantID: "g", ExpiresAt: exp}
	ops := []struct {
		name string
		op   func() error
		want int
	}{
		{"SaveCode", func() error {
			return s.SaveCode(ctx, "g", "code", store.AuthorizationCode{ExpiresAt: exp})
		}, 1},
		{"RedeemCode", func() error {
			return s.RedeemCode(ctx, "g", "code", store.Grant{ID: "g", ExpiresAt: exp},
				store.TokenPair{AccessHash: "at", Access: tok, RefreshHash: "rt", Refresh: tok})
		}, 1},
		{"GetAccessToken", func() error { _, err := s.GetAccessToken(ctx, "g", "at"); return err }, 1},
		{"ReadTokenRequest", func() error {
			r := s.ReadTokenRequest(ctx, store.TokenRequestKeys{ClientID: "c", GrantID: "g", RefreshHash: "rt"})
			if !errors.Is(r.ClientErr, store.ErrNotFound) {
				return fmt.Errorf("client: %v", r.ClientErr)
			}
			return r.RefreshErr
		}, 1},
		{"RotateRefreshToken", func() error {
			_, err := s.RotateRefreshToken(ctx, "g", "rt", store.TokenPair{AccessHash: "at2", Access: tok, RefreshHash: "rt2", Refresh: tok},
				store.Successor{ClientID: "c", Sealed: []byte("sealed"), Until: exp})
			return err
		}, 1},
		{"RotateRefreshToken with the client's use", func() error {
			_, err := s.RotateRefreshToken(ctx, "g", "rt2", store.TokenPair{AccessHash: "at3", Access: tok, RefreshHash: "rt3", Refresh: tok,
				ClientUse: &store.ClientUse{ClientID: "c", LastUsedAt: time.Now(), ExpiresAt: exp}},
				store.Successor{ClientID: "c", Sealed: []byte("sealed"), Until: exp})
			return err
		}, 1},
		{"AcquireLease", func() error {
			ok, err := s.AcquireLease(ctx, "lease", time.Minute)
			if err == nil && !ok {
				return errors.New("lease not acquired")
			}
			return err
		}, 1},
		{"ReleaseLease", func() error { return s.ReleaseLease(ctx, "lease") }, 1},
		{"SaveLogin", func() error {
			return s.SaveLogin(ctx, store.Login{UserID: "u", Upstream: store.UpstreamToken{Ciphertext: []byte("x")},
				UpstreamTTL: time.Hour, GrantID: "g2", CodeHash: "code", Code: store.AuthorizationCode{ExpiresAt: exp}})
		}, 1},
		// The grant's script, then the feed entry: on a Cluster the feed is in
		// another slot, so no one script can do both.
		{"RevokeGrant", func() error { return s.RevokeGrant(ctx, "g") }, 2},
		{"RevokeGrant of an unknown grant", func() error { return s.RevokeGrant(ctx, "unknown") }, 1},
		{"RevokeTokenID", func() error { return s.RevokeTokenID(ctx, "g3", "jti", exp) }, 1},
		{"TokenIDRevoked", func() error { _, err := s.TokenIDRevoked(ctx, "g3", "jti"); return err }, 1},
		{"Revocations", func() error { _, err := s.Revocations(ctx, time.Time{}); return err }, 1},
		{"SavePending", func() error {
			return s.SavePending(ctx, "st", store.PendingAuthorization{ExpiresAt: exp})
		}, 1},
		{"TakePending", func() error { _, err := s.TakePending(ctx, "st"); return err }, 1},
		{"CountClients", func() error { _, err := s.CountClients(ctx); return err }, 1},
	}
	for _, o := range ops {
		if err := o.op(); err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		if cmds, n := counter.reset(); n != o.want {
			t.Errorf("%s took %d round trips %v, want %d", o.name, n, cmds, o.want)
		}
	}
}

// benchStore is a store on its own redis-server for a benchmark.
func benchStore(b *testing.B) *Store {
	srv := redisserver.Start(b)
	s, err := New(b.Context(), Options{Addrs: []string{srv.Addr}, Prefix: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchTokens(grantID string, i int) store.TokenPair {
	now := time.Now()
	tok := store.Token{GrantID: grantID, ClientID: "client", UserID: "user", Scope: "read",
		Resource: []string{"https://mcp.example/"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	// Hashes the size the server's hex HMAC-SHA-256 will be.
	return store.TokenPair{
		AccessHash: fmt.Sprintf("a%063x", i), Access: tok,
		RefreshHash: fmt.Sprintf("r%063x", i), Refresh: tok,
	}
}

func BenchmarkGetAccessToken(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	exp := time.Now().Add(time.Hour)
	if err := s.SaveCode(ctx, "g", "code", store.AuthorizationCode{ExpiresAt: exp}); err != nil {
		b.Fatal(err)
	}
	p := benchTokens("g", 0)
	if err := s.RedeemCode(ctx, "g", "code", store.Grant{ID: "g", ExpiresAt: exp}, p); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetAccessToken(ctx, "g", p.AccessHash); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRotate(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	exp := time.Now().Add(time.Hour)
	if err := s.SaveCode(ctx, "g", "code", store.AuthorizationCode{ExpiresAt: exp}); err != nil {
		b.Fatal(err)
	}
	prev := benchTokens("g", 0)
	if err := s.RedeemCode(ctx, "g", "code", store.Grant{ID: "g", ExpiresAt: exp}, prev); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		next := benchTokens("g", i)
		if _, err := s.RotateRefreshToken(ctx, "g", prev.RefreshHash, next, store.Successor{}); err != nil {
			b.Fatal(err)
		}
		prev = next
	}
}

func BenchmarkRedeem(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	exp := time.Now().Add(time.Hour)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		grantID := "g" + strconv.Itoa(i)
		b.StopTimer()
		if err := s.SaveCode(ctx, grantID, "code", store.AuthorizationCode{ExpiresAt: exp}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := s.RedeemCode(ctx, grantID, "code", store.Grant{ID: grantID, ExpiresAt: exp}, benchTokens(grantID, i)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSaveLoginAfterScriptFlush: a Redis that lost its scripts (a restart) still saves
// the code, with the script sent again.
func TestSaveLoginAfterScriptFlush(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	ctx := t.Context()
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	l := store.Login{UserID: "u", Upstream: store.UpstreamToken{Ciphertext: []byte("x")}, UpstreamTTL: time.Hour,
		GrantID: "g", CodeHash: "code", Code: store.AuthorizationCode{ClientID: "c", ExpiresAt: exp}}
	if err := s.SaveLogin(ctx, l); err != nil {
		t.Fatalf("SaveLogin after SCRIPT FLUSH: %v", err)
	}
	if c, err := s.PeekCode(ctx, "g", "code"); err != nil || c.ClientID != "c" {
		t.Errorf("PeekCode: %+v, %v", c, err)
	}
	if _, err := s.GetUpstreamToken(ctx, "u"); err != nil {
		t.Errorf("GetUpstreamToken: %v", err)
	}
}

// TestRedeemAfterScriptFlushIndexes: a Redis that lost its scripts still redeems the
// code and indexes the grant, each script sent again.
func TestRedeemAfterScriptFlushIndexes(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := s.SaveCode(ctx, "g", "code", store.AuthorizationCode{ClientID: "c", UserID: "u", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	gr := store.Grant{ID: "g", ClientID: "c", UserID: "u", ExpiresAt: exp}
	tok := store.Token{GrantID: "g", ClientID: "c", UserID: "u", ExpiresAt: exp}
	if err := s.RedeemCode(ctx, "g", "code", gr, store.TokenPair{AccessHash: "a", Access: tok}); err != nil {
		t.Fatalf("RedeemCode after SCRIPT FLUSH: %v", err)
	}
	for _, f := range []store.GrantFilter{{UserID: "u"}, {ClientID: "c"}, {}} {
		if got, err := s.ListGrants(ctx, f); err != nil || len(got) != 1 || got[0].ID != "g" {
			t.Errorf("ListGrants(%+v) = %+v, %v; want grant g", f, got, err)
		}
	}
}

// TestListGrantsKeepsGrantsOnTheirWay: the index is written before the grant's script
// runs (on a Cluster, possibly on another node first), so an entry whose grant has a
// live code but no record yet must survive a ListGrants, while one whose grant is gone
// must not.
func TestListGrantsKeepsGrantsOnTheirWay(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := s.SaveCode(ctx, "onitsway", "code", store.AuthorizationCode{ClientID: "c", UserID: "u", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	idx := s.k.userGrants("u")
	for _, id := range []string{"onitsway", "gone"} {
		if err := s.runStatus(ctx, "index grant", indexGrantScript, []string{idx}, id, ms(exp), ttl(exp), ms(time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.ListGrants(ctx, store.GrantFilter{UserID: "u"}); err != nil || len(got) != 0 {
		t.Fatalf("ListGrants = %+v, %v; want none yet", got, err)
	}
	members := s.rdb.ZRange(ctx, idx, 0, -1).Val()
	if !slices.Equal(members, []string{"onitsway"}) {
		t.Errorf("index after ListGrants holds %v, want [onitsway]", members)
	}
	gr := store.Grant{ID: "onitsway", ClientID: "c", UserID: "u", ExpiresAt: exp}
	tok := store.Token{GrantID: "onitsway", ClientID: "c", UserID: "u", ExpiresAt: exp}
	if err := s.RedeemCode(ctx, "onitsway", "code", gr, store.TokenPair{AccessHash: "a", Access: tok}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListGrants(ctx, store.GrantFilter{UserID: "u"}); err != nil || len(got) != 1 {
		t.Errorf("ListGrants after redemption = %+v, %v; want the grant", got, err)
	}
}

// TestAGrantThatCannotBeIndexedIsNotHandedOut: when the redemption succeeds but an
// index write fails (here the user's index key holds a string, so ZADD fails as it
// would on an unreachable Cluster node), RedeemCode fails, so the tokens reach nobody,
// and the client's retry of the code revokes the grant as a replay.
func TestAGrantThatCannotBeIndexedIsNotHandedOut(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := s.rdb.Set(ctx, s.k.userGrants("u"), "not a sorted set", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCode(ctx, "g", "code", store.AuthorizationCode{ClientID: "c", UserID: "u", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	gr := store.Grant{ID: "g", ClientID: "c", UserID: "u", ExpiresAt: exp}
	tok := store.Token{GrantID: "g", ClientID: "c", UserID: "u", ExpiresAt: exp}
	err := s.RedeemCode(ctx, "g", "code", gr, store.TokenPair{AccessHash: "a1", Access: tok})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("RedeemCode with an unwritable index: %v, want ErrUnavailable", err)
	}
	err = s.RedeemCode(ctx, "g", "code", gr, store.TokenPair{AccessHash: "a2", Access: tok})
	if !errors.Is(err, store.ErrCodeReused) {
		t.Fatalf("the retry: %v, want ErrCodeReused", err)
	}
	if _, err := s.GetAccessToken(ctx, "g", "a1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the unindexed grant's token: %v, want it revoked", err)
	}
}

// TestAFailedTouchDoesNotFailTheWrite: the client's use rides in the redemption's and
// the rotation's script (chain) but is not part of their step: when it fails (here the
// client's key holds a hash, so its GET fails), the grant is written and its tokens
// handed out all the same.
func TestAFailedTouchDoesNotFailTheWrite(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := s.rdb.HSet(ctx, s.k.client("c"), "not", "a string").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCode(ctx, "g", "code", store.AuthorizationCode{ClientID: "c", UserID: "u", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	use := &store.ClientUse{ClientID: "c", LastUsedAt: time.Now(), ExpiresAt: exp}
	gr := store.Grant{ID: "g", ClientID: "c", UserID: "u", ExpiresAt: exp}
	tok := store.Token{GrantID: "g", ClientID: "c", UserID: "u", ExpiresAt: exp}
	if err := s.RedeemCode(ctx, "g", "code", gr, store.TokenPair{AccessHash: "a1", Access: tok, RefreshHash: "r1", Refresh: tok, ClientUse: use}); err != nil {
		t.Fatalf("RedeemCode with a failing touch: %v", err)
	}
	if got, err := s.ListGrants(ctx, store.GrantFilter{UserID: "u"}); err != nil || len(got) != 1 {
		t.Errorf("ListGrants after the redemption = %+v, %v; want the grant", got, err)
	}
	if _, err := s.RotateRefreshToken(ctx, "g", "r1", store.TokenPair{AccessHash: "a2", Access: tok, RefreshHash: "r2", Refresh: tok, ClientUse: use}, store.Successor{}); err != nil {
		t.Fatalf("RotateRefreshToken with a failing touch: %v", err)
	}
	if _, err := s.GetAccessToken(ctx, "g", "a2"); err != nil {
		t.Errorf("the rotated access token: %v", err)
	}
}

// TestRevokeTokenIDAfterScriptFlush: the feed entry of a revoked jti, written in the
// same pipeline as its mark, is written also when Redis has lost the script.
func TestRevokeTokenIDAfterScriptFlush(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	ctx := t.Context()
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeTokenID(ctx, "g", "jti-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("RevokeTokenID after SCRIPT FLUSH: %v", err)
	}
	feed, err := s.Revocations(ctx, time.Time{})
	if err != nil || len(feed) != 1 || feed[0].GrantID != "g" || feed[0].TokenID != "jti-1" {
		t.Fatalf("Revocations: %+v, %v", feed, err)
	}
	if revoked, err := s.TokenIDRevoked(ctx, "g", "jti-1"); err != nil || !revoked {
		t.Errorf("TokenIDRevoked: %v, %v", revoked, err)
	}
}

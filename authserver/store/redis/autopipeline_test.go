package redis

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// pauseRedis holds every client's commands in Redis for d (CLIENT PAUSE ALL), as a
// busy or stalled Redis would. Redis 7.0 cannot be unpaused early: even CLIENT
// UNPAUSE waits, so d is all the test waits.
func pauseRedis(t *testing.T, addr string, d time.Duration) {
	t.Helper()
	admin := goredis.NewClient(&goredis.Options{Addr: addr})
	defer admin.Close()
	if err := admin.Do(t.Context(), "client", "pause", d.Milliseconds(), "all").Err(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentCommandsShareRoundTrips: requests that read at the same time share
// round trips (autopipeline.go). Redis is held for a second while 32 readers start,
// so they all wait at once; each still gets its own record.
func TestConcurrentCommandsShareRoundTrips(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	const n = 32
	grant := func(i int) string {
		return "0123456789abcdef0123456789abcd" + string(rune('a'+i/16)) + string(rune('a'+i%16))
	}
	for i := range n {
		tok := store.Token{GrantID: grant(i), ClientID: "c", UserID: grant(i), ExpiresAt: exp}
		if err := s.SaveCode(ctx, grant(i), "code", store.AuthorizationCode{ClientID: "c", ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		if err := s.RedeemCode(ctx, grant(i), "code", store.Grant{ID: grant(i), ClientID: "c", ExpiresAt: exp},
			store.TokenPair{AccessHash: "at", Access: tok}); err != nil {
			t.Fatal(err)
		}
	}
	counter := &roundTrips{}
	s.rdb.AddHook(counter)

	pauseRedis(t, srv.Addr, time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			tok, err := s.GetAccessToken(ctx, grant(i), "at")
			if err == nil && tok.UserID != grant(i) {
				err = errors.New("got another reader's record: " + tok.UserID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if cmds, trips := counter.reset(); trips > n/4 {
		t.Errorf("%d concurrent GETs took %d round trips %v, want them batched into a few", n, trips, cmds)
	} else {
		t.Logf("%d concurrent GETs took %d round trips", n, trips)
	}
}

// TestADeadlineStillBoundsAStoreCall: an autopipelined command does not honour its
// context once queued, so the store waits on the context itself. A request whose
// deadline passes while Redis is stalled gets ErrUnavailable at its deadline, and the
// store works again once Redis does.
func TestADeadlineStillBoundsAStoreCall(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	s := openStore(t, Options{Addrs: []string{srv.Addr}})
	exp := time.Now().Add(time.Hour)
	if err := s.SavePending(t.Context(), "st", store.PendingAuthorization{ClientID: "c", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}

	pauseRedis(t, srv.Addr, 1500*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.GetAccessToken(ctx, "0123456789abcdef0123456789abcdef", "at")
	took := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a read past its deadline: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if took > time.Second {
		t.Errorf("the read returned after %s, want about its 200 ms deadline", took)
	}

	p, err := s.TakePending(t.Context(), "st")
	if err != nil || p.ClientID != "c" {
		t.Fatalf("after Redis came back: %+v, %v", p, err)
	}
}

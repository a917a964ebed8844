package faults

import (
	"context"
	"net/http"
	"testing"
	"time"

	redisstore "github.com/mcpauth/mcpauth/authserver/store/redis"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// TestRedisStopsAndReturnsDuringLoad kills Redis (SIGKILL, as a crash) under a steady
// load of logins, refreshes and introspections, then starts it again from its
// append-only file.
//
// While it is down the server stays up (/healthz 200), says it cannot serve
// (/readyz 503, so a Service stops sending it traffic) and answers 503
// temporarily_unavailable, never 500 (RFC 6749 §4.1.2.1 and §5.2 name that error for
// "a temporary overloading or maintenance"). When Redis is back it recovers within 2 s
// with no restart, and, with appendfsync always, no token a client received is lost.
func TestRedisStopsAndReturnsDuringLoad(t *testing.T) {
	rdb := redisserver.Start(t, redisserver.Options{Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	st, err := redisstore.New(t.Context(), redisstore.Options{Addrs: []string{rdb.Addr}, Prefix: "faults"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	tg, _ := startInProcess(t, st)
	ctx := t.Context()

	l := newLedger()
	loadCtx, stopLoad := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); tg.load(loadCtx, 4, l) }()
	t.Cleanup(func() { stopLoad(); <-done })
	eventually(t, 5*time.Second, "the load logs in", func() bool { return l.logins.Load() >= 5 })
	_, refresh := l.snapshot()

	killed := time.Now()
	rdb.Stop()
	t.Log("redis killed")
	eventually(t, 5*time.Second, "/readyz reports the outage", func() bool { return tg.get(ctx, "/readyz") == http.StatusServiceUnavailable })
	if got := tg.get(ctx, "/healthz"); got != http.StatusOK {
		t.Errorf("/healthz during the outage: %d, want 200: the server must stay up", got)
	}
	if _, err := tg.refresh(ctx, refresh[0]); statusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("a refresh during the outage: %v, want 503 temporarily_unavailable", err)
	}
	// An outage of a second and a half: requests caught by the crash retry their
	// scripts meanwhile, some against the restarted server, which must count them as
	// the same request, not a replay (store/redis TestALostReplyIsRetriedWithoutCountingAsReuse).
	time.Sleep(1500*time.Millisecond - time.Since(killed))

	rdb.Restart(t)
	back := time.Now()
	ready := eventually(t, 2*time.Second, "/readyz after Redis returned", func() bool { return tg.get(ctx, "/readyz") == http.StatusOK })
	logins := l.logins.Load()
	served := eventually(t, 2*time.Second, "a whole login after Redis returned", func() bool { return l.logins.Load() > logins })
	t.Logf("ready %s and serving logins %s after Redis returned", ready.Round(time.Millisecond), (ready + served).Round(time.Millisecond))
	if total := time.Since(back); total > 2*time.Second+500*time.Millisecond {
		t.Errorf("recovery took %s, want about 2 s at most", total)
	}

	stopLoad()
	<-done
	unavailable := checkNo5xxBut503(t, tg.log.since(killed))
	if unavailable == 0 {
		t.Error("no request was answered 503 during the outage")
	}
	t.Logf("%d logins, %d failed flows, %d answers 503", l.logins.Load(), l.failures.Load(), unavailable)
	tg.checkNothingLost(t, l)
}

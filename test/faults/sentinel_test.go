package faults

import (
	"context"
	"testing"
	"time"

	redisstore "github.com/mcpauth/mcpauth/authserver/store/redis"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// TestSentinelFailoverDuringLoad runs the server on Redis through three real
// redis-sentinel processes watching a master and its replica, all on loopback, kills
// the master mid-load, and checks that after the failover logins go on against the
// new master, with no answer worse than 503 on the way.
//
// Replication is asynchronous, so writes acknowledged in the last instant before the
// crash may be lost (the Redis documentation says so for every failover); tokens
// issued well before it survive, and so do the ones checked here, issued before the
// load starts and replicated (WAIT) before the crash.
func TestSentinelFailoverDuringLoad(t *testing.T) {
	master := redisserver.Start(t)
	replica := redisserver.StartReplica(t, master)
	sentinels := redisserver.StartSentinels(t, master, redisserver.FailoverOptions{})
	st, err := redisstore.New(t.Context(), redisstore.Options{
		Addrs: redisserver.SentinelAddrs(sentinels), MasterName: redisserver.MasterName, Prefix: "failover",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	tg, _ := startInProcess(t, st)
	ctx := t.Context()

	// Tokens from before the load, replicated before the crash.
	before := newLedger()
	for range 3 {
		if !tg.flow(ctx, before) {
			t.Fatal("a login before the failover failed")
		}
	}
	if n, err := st.Client().Do(ctx, "WAIT", 1, 2000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT for the replica: %d, %v", n, err)
	}

	l := newLedger()
	loadCtx, stopLoad := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); tg.load(loadCtx, 4, l) }()
	t.Cleanup(func() { stopLoad(); <-done })
	eventually(t, 5*time.Second, "the load logs in", func() bool { return l.logins.Load() >= 5 })

	killed := time.Now()
	master.Stop()
	promoted := eventually(t, 15*time.Second, "a sentinel promotes the replica", func() bool {
		addr, err := sentinels[0].MasterAddr()
		return err == nil && addr == replica.Addr
	})
	logins := l.logins.Load()
	served := eventually(t, 10*time.Second, "a whole login against the new master", func() bool { return l.logins.Load() >= logins+3 })
	t.Logf("replica promoted %s after the crash; logins went on %s later", promoted.Round(time.Millisecond), served.Round(time.Millisecond))

	stopLoad()
	<-done
	unavailable := checkNo5xxBut503(t, tg.log.since(killed))
	t.Logf("%d logins, %d failed flows, %d answers 503", l.logins.Load(), l.failures.Load(), unavailable)
	tg.checkNothingLost(t, before)
}

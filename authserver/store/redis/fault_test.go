package redis

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// TestALostReplyIsRetriedWithoutCountingAsReuse: when the connection to Redis dies
// after a redemption or rotation script ran but before its reply arrived (Redis
// crashed, failed over, or the network dropped), go-redis runs the script again on a
// new connection. That second run must report success, not a replay: a replay revokes
// the grant, and with it every token the client already holds. The failure is made
// by a proxy that drops one reply and closes the connection.
func TestALostReplyIsRetriedWithoutCountingAsReuse(t *testing.T) {
	t.Parallel()
	srv := redisserver.Start(t)
	proxy := newReplyDropper(t, srv.Addr)
	s := openStore(t, Options{Addrs: []string{proxy.addr}, Prefix: "lost"})
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	tok := func(grant string) store.Token {
		return store.Token{GrantID: grant, ClientID: "c", UserID: "u", IssuedAt: time.Now(), ExpiresAt: exp}
	}
	pair := func(grant, access, refresh string) store.TokenPair {
		return store.TokenPair{AccessHash: access, Access: tok(grant), RefreshHash: refresh, Refresh: tok(grant)}
	}
	const grant = "0123456789abcdef0123456789abcdef"
	if err := s.SaveCode(ctx, grant, "code", store.AuthorizationCode{ClientID: "c", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	gr := store.Grant{ID: grant, ClientID: "c", UserID: "u", ExpiresAt: exp}

	t.Run("a redemption whose reply was lost", func(t *testing.T) {
		proxy.dropNextReply()
		if err := s.RedeemCode(ctx, grant, "code", gr, pair(grant, "at1", "rt1")); err != nil {
			t.Fatalf("RedeemCode after a lost reply: %v", err)
		}
		if proxy.dropped.Load() != 1 {
			t.Fatal("the proxy dropped no reply: the test tested nothing")
		}
		if _, err := s.GetAccessToken(ctx, grant, "at1"); err != nil {
			t.Fatalf("the access token of the retried redemption: %v", err)
		}
		if err := s.RedeemCode(ctx, grant, "code", gr, pair(grant, "at-other", "rt-other")); !errors.Is(err, store.ErrCodeReused) {
			t.Fatalf("a second redemption of the code: %v, want ErrCodeReused", err)
		}
	})

	const grant2 = "fedcba9876543210fedcba9876543210"
	if err := s.SaveCode(ctx, grant2, "code", store.AuthorizationCode{ClientID: "c", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	gr.ID = grant2
	if err := s.RedeemCode(ctx, grant2, "code", gr, pair(grant2, "at1", "rt1")); err != nil {
		t.Fatal(err)
	}
	t.Run("a rotation whose reply was lost", func(t *testing.T) {
		before := proxy.dropped.Load()
		proxy.dropNextReply()
		// With a grace window, so that a retry taken for a reuse would be answered with
		// a successor (prior != nil) rather than succeed as its own rotation.
		succ := store.Successor{ClientID: "c", Sealed: []byte("sealed"), Until: time.Now().Add(time.Minute)}
		if prior, err := s.RotateRefreshToken(ctx, grant2, "rt1", pair(grant2, "at2", "rt2"), succ); err != nil || prior != nil {
			t.Fatalf("RotateRefreshToken after a lost reply: %q, %v; want its own rotation", prior, err)
		}
		if proxy.dropped.Load() != before+1 {
			t.Fatal("the proxy dropped no reply: the test tested nothing")
		}
		for _, h := range []string{"at1", "at2"} {
			if _, err := s.GetAccessToken(ctx, grant2, h); err != nil {
				t.Errorf("access token %s after the retried rotation: %v", h, err)
			}
		}
		if _, err := s.GetRefreshToken(ctx, grant2, "rt2"); err != nil {
			t.Errorf("the new refresh token: %v", err)
		}
		other := store.Successor{ClientID: "another-client"}
		if _, err := s.RotateRefreshToken(ctx, grant2, "rt1", pair(grant2, "at3", "rt3"), other); !errors.Is(err, store.ErrRefreshReused) {
			t.Fatalf("a real reuse of the old refresh token: %v, want ErrRefreshReused", err)
		}
	})
}

// replyDropper is a TCP proxy to Redis that, when armed, swallows the next reply from
// Redis and closes both connections, as a crash or a network fault would.
type replyDropper struct {
	addr    string
	target  string
	armed   atomic.Bool
	dropped atomic.Int64
}

func newReplyDropper(t *testing.T, target string) *replyDropper {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{addr: l.Addr().String(), target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c) })
		}
	})
	return p
}

func (p *replyDropper) dropNextReply() { p.armed.Store(true) }

func (p *replyDropper) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() { _, _ = io.Copy(server, client); server.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if err != nil {
			return
		}
		if p.armed.CompareAndSwap(true, false) {
			p.dropped.Add(1)
			return // the reply is lost, and the connection with it
		}
		if _, err := client.Write(buf[:n]); err != nil {
			return
		}
	}
}

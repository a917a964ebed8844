package storetest

import (
	"errors"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// The registration lifecycle: per-source limits, uses that slide a registration's
// expiry forward, and listing. The tests are listed in RunTests and
// RunConcurrencyTests.

// sourced is f.client with a source address.
func (f *fixture) sourced(id, source string, ttl time.Duration) store.Client {
	c := f.client(id, ttl)
	c.Source = source
	return c
}

// limitError asserts err is a *store.SourceLimitError (errors.Is ErrSourceLimit) whose
// FreeAt is want, to the millisecond a backend may keep.
func (f *fixture) limitError(err error, want time.Time, what string) {
	f.Helper()
	var le *store.SourceLimitError
	if !errors.Is(err, store.ErrSourceLimit) || !errors.As(err, &le) {
		f.Fatalf("%s: got error %v, want a *SourceLimitError", what, err)
	}
	if d := want.Sub(le.FreeAt); d < 0 || d >= time.Millisecond {
		f.Errorf("%s: FreeAt %s, want %s", what, le.FreeAt, want)
	}
}

func testClientSourceLimit(f *fixture) {
	const limit = 3
	src, other := "192.0.2."+randomHex(1), "2001:db8:"+randomHex(2)+"::/64"
	var first store.Client
	for i := range limit {
		c := f.sourced("client-"+randomHex(4), src, longTTL+time.Duration(i)*time.Minute)
		if i == 0 {
			first = c
		}
		f.ok(f.s.CreateClientLimited(f.ctx, c, limit), "CreateClientLimited under the limit")
	}
	refused := f.sourced("client-"+randomHex(4), src, longTTL)
	f.limitError(f.s.CreateClientLimited(f.ctx, refused, limit), first.ExpiresAt, "CreateClientLimited over the limit")
	_, err := f.s.GetClient(f.ctx, refused.ID)
	f.is(err, store.ErrNotFound, "GetClient of the refused client")

	f.ok(f.s.CreateClientLimited(f.ctx, f.sourced("client-"+randomHex(4), other, longTTL), limit), "another source's registration")
	f.ok(f.s.CreateClientLimited(f.ctx, f.client("client-"+randomHex(4), longTTL), limit), "a registration without a source")
	f.ok(f.s.CreateClient(f.ctx, f.sourced("client-"+randomHex(4), src, longTTL)), "CreateClient, which has no limit")
	f.ok(f.s.CreateClientLimited(f.ctx, f.sourced("client-"+randomHex(4), src, longTTL), 0), "a limit of 0 is none")

	// The source holds limit+2 (CreateClient and limit 0 added two); a deletion frees
	// a place at once.
	f.is(f.s.CreateClientLimited(f.ctx, refused, limit+2), store.ErrSourceLimit, "at a limit of limit+2")
	f.ok(f.s.DeleteClient(f.ctx, first.ID), "DeleteClient")
	f.ok(f.s.CreateClientLimited(f.ctx, refused, limit+2), "after a deletion")
	n, err := f.s.CountClients(f.ctx)
	f.ok(err, "CountClients")
	f.equal(n, limit+4, "client count")
}

func testClientSourceLimitShared(f *fixture) {
	other := f.newStore(f.prefix()) // another replica
	src := "198.51.100." + randomHex(1)
	f.ok(f.s.CreateClientLimited(f.ctx, f.sourced("client-"+randomHex(4), src, longTTL), 2), "first replica")
	f.ok(other.CreateClientLimited(f.ctx, f.sourced("client-"+randomHex(4), src, longTTL), 2), "second replica")
	f.is(f.s.CreateClientLimited(f.ctx, f.sourced("client-"+randomHex(4), src, longTTL), 2), store.ErrSourceLimit, "first replica, over the shared limit")
	f.is(other.CreateClientLimited(f.ctx, f.sourced("client-"+randomHex(4), src, longTTL), 2), store.ErrSourceLimit, "second replica, over the shared limit")

	tenant := f.newStore("other-" + randomHex(4))
	f.ok(tenant.CreateClientLimited(f.ctx, f.sourced("client-"+randomHex(4), src, longTTL), 2), "another tenant counts on its own")
}

func testClientTouch(f *fixture) {
	c := f.sourced("client-"+randomHex(4), "192.0.2.7", longTTL)
	f.ok(f.s.CreateClient(f.ctx, c), "CreateClient")
	got, err := f.s.GetClient(f.ctx, c.ID)
	f.ok(err, "GetClient")
	f.equal(got.LastUsedAt, time.Time{}, "LastUsedAt of a client never used")

	// An update between the read and the touch survives the touch, also one whose
	// values spell the fields a touch rewrites.
	c.Name = `x","expires_at":"2000-01-01T00:00:00Z","last_used_at":"2000-01-01T00:00:00Z\`
	c.RedirectURIs = []string{`https://renamed.example/cb?a={"expires_at":"1"}`}
	f.ok(f.s.UpdateClient(f.ctx, c), "UpdateClient")
	now := f.now()
	use := store.ClientUse{ClientID: c.ID, Source: c.Source, LastUsedAt: now, ExpiresAt: now.Add(2 * longTTL)}
	f.ok(f.s.TouchClient(f.ctx, use), "TouchClient")
	got, err = f.s.GetClient(f.ctx, c.ID)
	f.ok(err, "GetClient")
	c.LastUsedAt, c.ExpiresAt = use.LastUsedAt, use.ExpiresAt
	f.equal(got, c, "touched client")

	// Touching again moves both again.
	later := now.Add(time.Minute)
	use.LastUsedAt, use.ExpiresAt = later, later.Add(longTTL)
	f.ok(f.s.TouchClient(f.ctx, use), "second TouchClient")
	got, err = f.s.GetClient(f.ctx, c.ID)
	f.ok(err, "GetClient")
	f.equal([]time.Time{got.LastUsedAt, got.ExpiresAt}, []time.Time{use.LastUsedAt, use.ExpiresAt}, "LastUsedAt and ExpiresAt after a second touch")

	f.is(f.s.TouchClient(f.ctx, store.ClientUse{ClientID: "no-such-client", LastUsedAt: now, ExpiresAt: now.Add(longTTL)}),
		store.ErrNotFound, "TouchClient of an unknown client")
	_, err = f.s.GetClient(f.ctx, "no-such-client")
	f.is(err, store.ErrNotFound, "GetClient after touching an unknown client")
}

// testClientIdle is idle removal: a registration expires at its ExpiresAt unless a
// use moves it, and the expired one leaves the count, the list and its source's
// limit on its own.
func testClientIdle(f *fixture) {
	src := "203.0.113." + randomHex(1)
	idle := f.sourced("idle-"+randomHex(4), src, shortTTL)
	used := f.sourced("used-"+randomHex(4), src, shortTTL)
	f.ok(f.s.CreateClientLimited(f.ctx, idle, 2), "CreateClientLimited")
	f.ok(f.s.CreateClientLimited(f.ctx, used, 2), "CreateClientLimited")
	f.is(f.s.CreateClientLimited(f.ctx, f.sourced("c-"+randomHex(4), src, longTTL), 2), store.ErrSourceLimit, "at the limit")

	f.h.Wait(shortTTL / 2)
	now := f.now()
	f.ok(f.s.TouchClient(f.ctx, store.ClientUse{ClientID: used.ID, Source: src, LastUsedAt: now, ExpiresAt: now.Add(2 * shortTTL)}), "TouchClient")
	f.h.Wait(shortTTL/2 + shortTTL/4)

	_, err := f.s.GetClient(f.ctx, idle.ID)
	f.is(err, store.ErrNotFound, "GetClient of the idle client")
	got, err := f.s.GetClient(f.ctx, used.ID)
	f.ok(err, "GetClient of the used client, past its first expiry")
	f.equal(got.LastUsedAt, now, "LastUsedAt")
	n, err := f.s.CountClients(f.ctx)
	f.ok(err, "CountClients")
	f.equal(n, 1, "client count once the idle one expired")
	list, err := f.s.ListClients(f.ctx)
	f.ok(err, "ListClients")
	f.equal(clientIDs(list), []string{used.ID}, "listed clients")
	f.ok(f.s.CreateClientLimited(f.ctx, f.sourced("c-"+randomHex(4), src, longTTL), 2), "the idle one's place is free")
	f.is(f.s.TouchClient(f.ctx, store.ClientUse{ClientID: idle.ID, Source: src, LastUsedAt: now, ExpiresAt: now.Add(longTTL)}),
		store.ErrNotFound, "TouchClient of an expired client does not bring it back")
	_, err = f.s.GetClient(f.ctx, idle.ID)
	f.is(err, store.ErrNotFound, "GetClient of the idle client after a late touch")
}

// testClientUseWithGrant: RedeemCode and RotateRefreshToken write their pair's
// ClientUse, whatever the step answers.
func testClientUseWithGrant(f *fixture) {
	c := f.client("client-"+randomHex(4), longTTL)
	f.ok(f.s.CreateClient(f.ctx, c), "CreateClient")
	lastUsed := func() time.Time {
		f.Helper()
		got, err := f.s.GetClient(f.ctx, c.ID)
		f.ok(err, "GetClient")
		return got.LastUsedAt
	}
	use := func(d time.Duration) *store.ClientUse {
		at := f.now().Add(d)
		return &store.ClientUse{ClientID: c.ID, LastUsedAt: at, ExpiresAt: at.Add(longTTL)}
	}

	grantID, codeHash := newGrantID(), randomHex(32)
	f.ok(f.s.SaveCode(f.ctx, grantID, codeHash, f.code(longTTL)), "SaveCode")
	pair := f.pair(grantID, longTTL, longTTL)
	pair.ClientUse = use(time.Second)
	f.ok(f.s.RedeemCode(f.ctx, grantID, codeHash, f.grant(grantID, longTTL), pair), "RedeemCode")
	f.equal(lastUsed(), pair.ClientUse.LastUsedAt, "LastUsedAt after RedeemCode")

	next := f.pair(grantID, longTTL, longTTL)
	next.ClientUse = use(2 * time.Second)
	f.ok(f.rotate(f.s, grantID, pair.RefreshHash, next), "RotateRefreshToken")
	f.equal(lastUsed(), next.ClientUse.LastUsedAt, "LastUsedAt after RotateRefreshToken")

	unknown := f.pair(grantID, longTTL, longTTL)
	unknown.ClientUse = use(3 * time.Second)
	f.is(f.rotate(f.s, grantID, randomHex(32), unknown), store.ErrNotFound, "RotateRefreshToken of an unknown token")
	f.equal(lastUsed(), unknown.ClientUse.LastUsedAt, "LastUsedAt after a refused rotation")

	gone := f.pair(grantID, longTTL, longTTL)
	gone.ClientUse = &store.ClientUse{ClientID: "no-such-client", LastUsedAt: f.now(), ExpiresAt: f.now().Add(longTTL)}
	f.ok(f.rotate(f.s, grantID, next.RefreshHash, gone), "RotateRefreshToken with an unknown client's use")
	_, err := f.s.GetClient(f.ctx, "no-such-client")
	f.is(err, store.ErrNotFound, "GetClient of the unknown client")
}

func testListClients(f *fixture) {
	list, err := f.s.ListClients(f.ctx)
	f.ok(err, "ListClients of an empty store")
	f.equal(len(list), 0, "clients of an empty store")
	var want []store.Client
	for i := range 3 {
		c := f.sourced("client-"+randomHex(4), "192.0.2.1", longTTL)
		c.CreatedAt = c.CreatedAt.Add(time.Duration(-i) * time.Minute) // the last made is the oldest
		f.ok(f.s.CreateClient(f.ctx, c), "CreateClient")
		want = append([]store.Client{c}, want...)
	}
	gone := f.client("gone-"+randomHex(4), longTTL)
	f.ok(f.s.CreateClient(f.ctx, gone), "CreateClient")
	f.ok(f.s.DeleteClient(f.ctx, gone.ID), "DeleteClient")
	f.ok(f.newStore("other-"+randomHex(4)).CreateClient(f.ctx, f.client("other-"+randomHex(4), longTTL)), "another tenant's client")
	list, err = f.s.ListClients(f.ctx)
	f.ok(err, "ListClients")
	f.equal(list, want, "clients, oldest first")
}

func testConcurrentSourceLimit(f *fixture) {
	const limit = 5
	src := "192.0.2." + randomHex(1)
	errs := race(func(int) error {
		return f.s.CreateClientLimited(f.ctx, f.sourced("client-"+randomHex(4), src, longTTL), limit)
	})
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrSourceLimit):
			f.Errorf("racer %d: %v, want nil or ErrSourceLimit", i, err)
		}
	}
	f.equal(ok, limit, "registrations that got in")
}

func clientIDs(cs []store.Client) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

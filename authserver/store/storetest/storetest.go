// Package storetest is the one conformance suite for store.Store backends, in the
// manner of dex's storage/conformance: a backend's test only describes how to make a
// store and calls RunTests and RunConcurrencyTests, so every backend is held to the
// same, written-down semantics (the doc comments in package store).
//
//	func TestStore(t *testing.T) {
//		h := storetest.Harness{NewStore: func(t *testing.T, prefix string) store.Store { ... }}
//		storetest.RunTests(t, h)
//		storetest.RunConcurrencyTests(t, h)
//	}
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// Harness tells the suite how to make stores and how time passes for them.
type Harness struct {
	// NewStore returns an empty store that keeps its records under prefix. Stores made
	// with different prefixes in one test must share one backend (one Redis database,
	// one memory database), so that tenant isolation is tested for real. The suite
	// closes every store it makes.
	NewStore func(t *testing.T, prefix string) store.Store
	// Now is the clock the stores read; nil means time.Now.
	Now func() time.Time
	// Wait lets d pass on that clock; nil means time.Sleep. A backend with an injected
	// clock advances it, and the expiry tests take no time.
	Wait func(d time.Duration)
	// RevocationRetention is the revocation feed retention the stores were made with;
	// the retention test waits past it, so keep it short on a real clock. Required.
	RevocationRetention time.Duration
}

// shortTTL is the lifetime of records that the expiry tests watch expire. It bounds
// how long those tests wait on a real clock, and has to be long enough for the records
// to be written and read back before it passes.
const shortTTL = time.Second

// longTTL is the lifetime of records that must outlive a test.
const longTTL = time.Hour

// RunTests runs the conformance suite: every method, every documented error, expiry
// and tenant isolation.
func RunTests(t *testing.T, h Harness) {
	tests := []struct {
		name string
		run  func(f *fixture)
	}{
		{"A created client can be read back", testClientCreateGet},
		{"Creating a client twice returns ErrAlreadyExists", testClientCreateTwice},
		{"Updating a client replaces it", testClientUpdate},
		{"Updating a missing client returns ErrNotFound", testClientUpdateMissing},
		{"Deleting a client is idempotent", testClientDelete},
		{"CountClients counts live registrations", testClientCount},
		{"CreateClientLimited refuses a source's registration over the limit, saying when a place frees", testClientSourceLimit},
		{"Every replica of a tenant shares the per-source count", testClientSourceLimitShared},
		{"TouchClient moves LastUsedAt and ExpiresAt and keeps the rest", testClientTouch},
		{"An unused registration expires, a used one lives on, and the expired one frees its source's place", testClientIdle},
		{"RedeemCode and RotateRefreshToken record their pair's ClientUse", testClientUseWithGrant},
		{"ListClients lists the tenant's live registrations, oldest first", testListClients},
		{"A pending authorization is taken exactly once", testPendingTakeOnce},
		{"Saving a pending authorization again replaces it", testPendingReplace},
		{"A saved code can be peeked without consuming it", testCodePeek},
		{"Saving a code hash twice returns ErrAlreadyExists", testCodeSaveTwice},
		{"Redeeming a code stores the grant and its tokens", testCodeRedeem},
		{"Redeeming an unknown code returns ErrNotFound and stores nothing", testCodeRedeemUnknown},
		{"A reused code returns ErrCodeReused and revokes the grant", testCodeReuse},
		{"Records are found only under their own grant", testWrongGrant},
		{"Revoking an access token leaves the rest of the grant", testRevokeAccessToken},
		{"Rotation retires the old refresh token and stores the new pair", testRotate},
		{"Rotation may issue only an access token", testRotateAccessOnly},
		{"Reusing a rotated refresh token returns ErrRefreshReused and revokes the whole grant", testRefreshReuse},
		{"Rotating an unknown refresh token returns ErrNotFound", testRotateUnknown},
		{"Inside the reuse window the same client gets the rotation's successor back and nothing is revoked", testWindowSameClient},
		{"Inside the reuse window another client's reuse revokes the whole grant", testWindowOtherClient},
		{"After the reuse window a reuse by the same client revokes the whole grant", testWindowExpiry},
		{"RevokeGrant drops the successors kept for the reuse window", testWindowRevoked},
		{"RevokeGrant deletes the grant and all its tokens", testRevokeGrant},
		{"RevokeGrant is idempotent and accepts unknown grants", testRevokeGrantIdempotent},
		{"After RevokeGrant a current refresh token returns ErrGrantRevoked", testRevokedRotate},
		{"After RevokeGrant an unredeemed code returns ErrGrantRevoked", testRevokedCode},
		{"Replays after RevokeGrant are still recognised", testReplayAfterRevoke},
		{"An upstream token can be put, replaced, read and deleted", testUpstream},
		{"A record whose ExpiresAt has passed is never returned", testAlreadyExpired},
		{"Records expire at their ExpiresAt", testExpiry},
		{"Stores with different prefixes do not see each other's records", testTenantIsolation},
		{"Ping succeeds on a healthy backend", testPing},
		{"A lease is held by one store value until it releases it", testLease},
		{"A lease expires after its ttl, and its old holder cannot release the next one's", testLeaseExpiry},
		{"ReadTokenRequest answers as GetClient, PeekCode and GetRefreshToken do", testReadTokenRequest},
		{"SaveLogin stores the upstream token and the code as PutUpstreamToken and SaveCode do", testSaveLogin},
		{"ListGrants finds grants by user, by client, by both and of the whole tenant", testListGrants},
		{"ListGrants leaves out unredeemed codes and revoked or expired grants", testListGrantsLiveOnly},
		{"ListGrants sees only its own tenant", testListGrantsTenant},
		{"Every kind of grant revocation appears in the revocation feed", testFeedGrantRevocations},
		{"Revoking an unknown grant adds nothing to the feed", testFeedUnknownGrant},
		{"RevokeTokenID marks the jti until it expires and records it in the feed", testFeedTokenID},
		{"Revocations returns the entries at or after since, oldest first", testFeedSince},
		{"Feed entries are kept for the retention, then dropped", testFeedRetention},
		{"Stores with different prefixes have separate feeds", testFeedTenants},
		{"RequestApproval stores a client's first request and returns it to later ones", testApprovalRequestOnce},
		{"SetApproval records a decision that later requests do not undo; DeleteApproval is idempotent", testApprovalDecide},
		{"ListApprovals filters by state, oldest request first, and sees only its own tenant", testApprovalList},
		{"Approvals expire at their ExpiresAt", testApprovalExpiry},
	}
	for _, tc := range append(tests, agentTests...) {
		t.Run(tc.name, func(t *testing.T) { tc.run(newFixture(t, h)) })
	}
}

// RunConcurrencyTests checks that the single-use operations stay single-use when many
// callers race: each races 16 goroutines on one record.
func RunConcurrencyTests(t *testing.T, h Harness) {
	tests := []struct {
		name string
		run  func(f *fixture)
	}{
		{"Concurrent redemptions of one code: exactly one succeeds and the grant ends revoked", testConcurrentRedeem},
		{"Concurrent rotations of one refresh token: exactly one succeeds and the grant ends revoked", testConcurrentRotate},
		{"Concurrent rotations of one refresh token inside the reuse window: one rotates, the others get its successor", testConcurrentRotateInWindow},
		{"Concurrent takes of one pending authorization: exactly one succeeds", testConcurrentTake},
		{"Concurrent acquisitions of one lease, by one store value and by several: exactly one succeeds", testConcurrentLease},
		{"Concurrent creations of one client: exactly one succeeds", testConcurrentCreateClient},
		{"Concurrent registrations from one source: exactly the limit get in", testConcurrentSourceLimit},
		{"Concurrent redemptions of one user's codes: every grant is listed", testConcurrentIndex},
		{"Concurrent approval requests of one client: one record is stored and every caller gets it", testConcurrentApprovalRequest},
	}
	for _, tc := range append(tests, agentConcurrencyTests...) {
		t.Run(tc.name, func(t *testing.T) { tc.run(newFixture(t, h)) })
	}
}

// fixture is one subtest's store, clock and helpers.
type fixture struct {
	*testing.T
	h   Harness
	ctx context.Context
	s   store.Store
	// tenant is s's prefix.
	tenant string
}

func newFixture(t *testing.T, h Harness) *fixture {
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Wait == nil {
		h.Wait = time.Sleep
	}
	f := &fixture{T: t, h: h, ctx: t.Context(), tenant: "storetest-" + randomHex(6)}
	f.s = f.newStore(f.tenant)
	return f
}

// prefix is the tenant of the fixture's store, for another store value of it (as
// another replica has).
func (f *fixture) prefix() string { return f.tenant }

// newStore makes a store under prefix and closes it when the test ends.
func (f *fixture) newStore(prefix string) store.Store {
	s := f.h.NewStore(f.T, prefix)
	f.Cleanup(func() {
		if err := s.Close(); err != nil {
			f.Errorf("Close: %v", err)
		}
	})
	return s
}

// run runs fn as a subtest with a fixture of its own, sharing the store.
func (f *fixture) run(name string, fn func(f *fixture)) {
	f.Run(name, func(t *testing.T) {
		sub := *f
		sub.T = t
		fn(&sub)
	})
}

// now reads the store's clock, in the form a JSON round trip returns (UTC, no
// monotonic reading), so records compare with reflect.DeepEqual.
func (f *fixture) now() time.Time { return f.h.Now().UTC().Round(0) }

func (f *fixture) client(id string, ttl time.Duration) store.Client {
	now := f.now()
	return store.Client{
		ID:                      id,
		SecretHash:              randomHex(32),
		Name:                    "Client " + id,
		RedirectURIs:            []string{"https://app.example/cb", "http://127.0.0.1/cb"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: "client_secret_basic",
		Scope:                   "read write",
		ApplicationType:         "web",
		RegistrationTokenHash:   randomHex(32),
		CreatedAt:               now,
		ExpiresAt:               now.Add(ttl),
	}
}

func (f *fixture) pending(ttl time.Duration) store.PendingAuthorization {
	return store.PendingAuthorization{
		ClientID:            "client-" + randomHex(4),
		RedirectURI:         "https://app.example/cb",
		State:               randomHex(8),
		Scope:               "read",
		CodeChallenge:       randomHex(32),
		CodeChallengeMethod: "S256",
		Resource:            []string{"https://mcp.example/"},
		UpstreamVerifier:    randomHex(32),
		Nonce:               randomHex(8),
		BrowserBinding:      randomHex(32),
		ExpiresAt:           f.now().Add(ttl),
	}
}

func (f *fixture) code(ttl time.Duration) store.AuthorizationCode {
	now := f.now()
	return store.AuthorizationCode{
		ClientID:            "client-1",
		RedirectURI:         "https://app.example/cb",
		Scope:               "read",
		CodeChallenge:       randomHex(32),
		CodeChallengeMethod: "S256",
		Resource:            []string{"https://mcp.example/"},
		UserID:              "user-1",
		AuthTime:            now,
		ExpiresAt:           now.Add(ttl),
	}
}

func (f *fixture) grant(id string, ttl time.Duration) store.Grant {
	now := f.now()
	return store.Grant{
		ID: id, ClientID: "client-1", UserID: "user-1", Scope: "read",
		Resource: []string{"https://mcp.example/"}, AuthTime: now, ExpiresAt: now.Add(ttl),
	}
}

// pair returns fresh access and refresh tokens of grantID with the given lifetimes;
// a zero refreshTTL leaves out the refresh token.
func (f *fixture) pair(grantID string, accessTTL, refreshTTL time.Duration) store.TokenPair {
	now := f.now()
	tok := func(ttl time.Duration) store.Token {
		return store.Token{
			GrantID: grantID, ClientID: "client-1", UserID: "user-1", Scope: "read",
			Resource: []string{"https://mcp.example/"}, IssuedAt: now, ExpiresAt: now.Add(ttl),
		}
	}
	p := store.TokenPair{AccessHash: randomHex(32), Access: tok(accessTTL)}
	if refreshTTL != 0 {
		p.RefreshHash, p.Refresh = randomHex(32), tok(refreshTTL)
	}
	return p
}

// issued is a grant redeemed from a code, with the hashes to reach its records.
type issued struct {
	grantID  string
	codeHash string
	grant    store.Grant
	tokens   store.TokenPair
}

// issue saves a code and redeems it, all records living longTTL.
func (f *fixture) issue(s store.Store) issued {
	f.Helper()
	is := issued{grantID: newGrantID(), codeHash: randomHex(32)}
	is.grant = f.grant(is.grantID, longTTL)
	is.tokens = f.pair(is.grantID, longTTL, longTTL)
	f.ok(s.SaveCode(f.ctx, is.grantID, is.codeHash, f.code(longTTL)), "SaveCode")
	f.ok(s.RedeemCode(f.ctx, is.grantID, is.codeHash, is.grant, is.tokens), "RedeemCode")
	return is
}

// rotate is a rotation without a grace window, as before there was one: it keeps no
// successor, so it can only rotate or fail.
func (f *fixture) rotate(s store.Store, grantID, oldHash string, next store.TokenPair) error {
	f.Helper()
	prior, err := s.RotateRefreshToken(f.ctx, grantID, oldHash, next, store.Successor{})
	if prior != nil {
		f.Errorf("RotateRefreshToken without a window returned a successor %q", prior)
	}
	return err
}

// ok fails the test now if err is not nil.
func (f *fixture) ok(err error, what string) {
	f.Helper()
	if err != nil {
		f.Fatalf("%s: unexpected error: %v", what, err)
	}
}

// is fails the test if err is not target.
func (f *fixture) is(err, target error, what string) {
	f.Helper()
	if !errors.Is(err, target) {
		f.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// equal fails the test if got is not deeply equal to want.
func (f *fixture) equal(got, want any, what string) {
	f.Helper()
	if !reflect.DeepEqual(got, want) {
		f.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// tokensLive asserts that every token of p can be read, or that none can.
func (f *fixture) tokensLive(s store.Store, grantID string, p store.TokenPair, live bool) {
	f.Helper()
	at, err := s.GetAccessToken(f.ctx, grantID, p.AccessHash)
	if live {
		f.ok(err, "GetAccessToken")
		f.equal(at, p.Access, "access token")
	} else {
		f.is(err, store.ErrNotFound, "GetAccessToken")
	}
	if p.RefreshHash == "" {
		return
	}
	rt, err := s.GetRefreshToken(f.ctx, grantID, p.RefreshHash)
	if live {
		f.ok(err, "GetRefreshToken")
		f.equal(rt, p.Refresh, "refresh token")
	} else {
		f.is(err, store.ErrNotFound, "GetRefreshToken")
	}
}

// accessOnly leaves out the refresh token of a pair whose refresh token was rotated:
// its replay marker answers ErrRefreshReused rather than ErrNotFound.
func accessOnly(p store.TokenPair) store.TokenPair {
	p.RefreshHash, p.Refresh = "", store.Token{}
	return p
}

// revoked asserts that the grant and the given tokens are all gone.
func (f *fixture) revoked(s store.Store, grantID string, pairs ...store.TokenPair) {
	f.Helper()
	_, err := s.GetGrant(f.ctx, grantID)
	f.is(err, store.ErrNotFound, "GetGrant of a revoked grant")
	for _, p := range pairs {
		f.tokensLive(s, grantID, p, false)
	}
}

func testClientCreateGet(f *fixture) {
	c := f.client("client-"+randomHex(4), longTTL)
	f.ok(f.s.CreateClient(f.ctx, c), "CreateClient")
	got, err := f.s.GetClient(f.ctx, c.ID)
	f.ok(err, "GetClient")
	f.equal(got, c, "client")

	_, err = f.s.GetClient(f.ctx, "no-such-client")
	f.is(err, store.ErrNotFound, "GetClient of an unknown ID")
}

func testClientCreateTwice(f *fixture) {
	c := f.client("client-"+randomHex(4), longTTL)
	f.ok(f.s.CreateClient(f.ctx, c), "CreateClient")
	other := f.client(c.ID, longTTL)
	f.is(f.s.CreateClient(f.ctx, other), store.ErrAlreadyExists, "second CreateClient")
	got, err := f.s.GetClient(f.ctx, c.ID)
	f.ok(err, "GetClient")
	f.equal(got, c, "the first client, untouched")
}

func testClientUpdate(f *fixture) {
	c := f.client("client-"+randomHex(4), longTTL)
	f.ok(f.s.CreateClient(f.ctx, c), "CreateClient")
	c.Name = "Renamed"
	c.RedirectURIs = []string{"https://other.example/cb"}
	c.ExpiresAt = c.ExpiresAt.Add(time.Hour)
	f.ok(f.s.UpdateClient(f.ctx, c), "UpdateClient")
	got, err := f.s.GetClient(f.ctx, c.ID)
	f.ok(err, "GetClient")
	f.equal(got, c, "updated client")
	n, err := f.s.CountClients(f.ctx)
	f.ok(err, "CountClients")
	f.equal(n, 1, "client count after an update")
}

func testClientUpdateMissing(f *fixture) {
	c := f.client("client-"+randomHex(4), longTTL)
	f.is(f.s.UpdateClient(f.ctx, c), store.ErrNotFound, "UpdateClient of an unknown client")
	_, err := f.s.GetClient(f.ctx, c.ID)
	f.is(err, store.ErrNotFound, "GetClient after a failed update")
}

func testClientDelete(f *fixture) {
	c := f.client("client-"+randomHex(4), longTTL)
	f.ok(f.s.CreateClient(f.ctx, c), "CreateClient")
	f.ok(f.s.DeleteClient(f.ctx, c.ID), "DeleteClient")
	_, err := f.s.GetClient(f.ctx, c.ID)
	f.is(err, store.ErrNotFound, "GetClient after delete")
	f.ok(f.s.DeleteClient(f.ctx, c.ID), "second DeleteClient")
	f.ok(f.s.DeleteClient(f.ctx, "no-such-client"), "DeleteClient of an unknown ID")
	n, err := f.s.CountClients(f.ctx)
	f.ok(err, "CountClients")
	f.equal(n, 0, "client count after delete")
	f.ok(f.s.CreateClient(f.ctx, c), "CreateClient again after delete")
}

func testClientCount(f *fixture) {
	n, err := f.s.CountClients(f.ctx)
	f.ok(err, "CountClients")
	f.equal(n, 0, "client count of an empty store")
	ids := []string{"a-" + randomHex(4), "b-" + randomHex(4), "c-" + randomHex(4)}
	for _, id := range ids {
		f.ok(f.s.CreateClient(f.ctx, f.client(id, longTTL)), "CreateClient")
	}
	f.ok(f.s.DeleteClient(f.ctx, ids[1]), "DeleteClient")
	n, err = f.s.CountClients(f.ctx)
	f.ok(err, "CountClients")
	f.equal(n, 2, "client count")
}

func testPendingTakeOnce(f *fixture) {
	state, p := randomHex(32), f.pending(longTTL)
	f.ok(f.s.SavePending(f.ctx, state, p), "SavePending")
	got, err := f.s.TakePending(f.ctx, state)
	f.ok(err, "TakePending")
	f.equal(got, p, "pending authorization")
	_, err = f.s.TakePending(f.ctx, state)
	f.is(err, store.ErrNotFound, "second TakePending")
	_, err = f.s.TakePending(f.ctx, randomHex(32))
	f.is(err, store.ErrNotFound, "TakePending of an unknown state")
}

func testPendingReplace(f *fixture) {
	state := randomHex(32)
	f.ok(f.s.SavePending(f.ctx, state, f.pending(longTTL)), "SavePending")
	p := f.pending(longTTL)
	f.ok(f.s.SavePending(f.ctx, state, p), "second SavePending")
	got, err := f.s.TakePending(f.ctx, state)
	f.ok(err, "TakePending")
	f.equal(got, p, "the second pending authorization")
}

func testCodePeek(f *fixture) {
	grantID, codeHash, c := newGrantID(), randomHex(32), f.code(longTTL)
	f.ok(f.s.SaveCode(f.ctx, grantID, codeHash, c), "SaveCode")
	for i := range 2 {
		got, err := f.s.PeekCode(f.ctx, grantID, codeHash)
		f.ok(err, fmt.Sprintf("PeekCode #%d", i+1))
		f.equal(got, c, "code")
	}
	f.ok(f.s.RedeemCode(f.ctx, grantID, codeHash, f.grant(grantID, longTTL), f.pair(grantID, longTTL, longTTL)),
		"RedeemCode after peeking")
	_, err := f.s.PeekCode(f.ctx, grantID, randomHex(32))
	f.is(err, store.ErrNotFound, "PeekCode of an unknown code")
}

func testCodeSaveTwice(f *fixture) {
	grantID, codeHash, c := newGrantID(), randomHex(32), f.code(longTTL)
	f.ok(f.s.SaveCode(f.ctx, grantID, codeHash, c), "SaveCode")
	f.is(f.s.SaveCode(f.ctx, grantID, codeHash, f.code(longTTL)), store.ErrAlreadyExists, "second SaveCode")
	got, err := f.s.PeekCode(f.ctx, grantID, codeHash)
	f.ok(err, "PeekCode")
	f.equal(got, c, "the first code, untouched")

	// Saving over a redeemed code must not make it redeemable again.
	f.ok(f.s.RedeemCode(f.ctx, grantID, codeHash, f.grant(grantID, longTTL), f.pair(grantID, longTTL, longTTL)), "RedeemCode")
	f.is(f.s.SaveCode(f.ctx, grantID, codeHash, f.code(longTTL)), store.ErrAlreadyExists, "SaveCode over a redeemed code")
	_, err = f.s.PeekCode(f.ctx, grantID, codeHash)
	f.is(err, store.ErrCodeReused, "PeekCode of the redeemed code")
}

func testCodeRedeem(f *fixture) {
	is := f.issue(f.s)
	g, err := f.s.GetGrant(f.ctx, is.grantID)
	f.ok(err, "GetGrant")
	f.equal(g, is.grant, "grant")
	f.tokensLive(f.s, is.grantID, is.tokens, true)
	_, err = f.s.PeekCode(f.ctx, is.grantID, is.codeHash)
	f.is(err, store.ErrCodeReused, "PeekCode after redemption")
	// Peeking at a redeemed code reports it but revokes nothing.
	f.tokensLive(f.s, is.grantID, is.tokens, true)

	_, err = f.s.GetGrant(f.ctx, newGrantID())
	f.is(err, store.ErrNotFound, "GetGrant of an unknown grant")
}

func testCodeRedeemUnknown(f *fixture) {
	grantID := newGrantID()
	tokens := f.pair(grantID, longTTL, longTTL)
	err := f.s.RedeemCode(f.ctx, grantID, randomHex(32), f.grant(grantID, longTTL), tokens)
	f.is(err, store.ErrNotFound, "RedeemCode of an unknown code")
	_, err = f.s.GetGrant(f.ctx, grantID)
	f.is(err, store.ErrNotFound, "GetGrant after a failed redemption")
	f.tokensLive(f.s, grantID, tokens, false)
}

func testCodeReuse(f *fixture) {
	is := f.issue(f.s)
	second := f.pair(is.grantID, longTTL, longTTL)
	err := f.s.RedeemCode(f.ctx, is.grantID, is.codeHash, is.grant, second)
	f.is(err, store.ErrCodeReused, "second RedeemCode")
	f.revoked(f.s, is.grantID, is.tokens, second)
	err = f.s.RedeemCode(f.ctx, is.grantID, is.codeHash, is.grant, second)
	f.is(err, store.ErrCodeReused, "third RedeemCode")
	f.revoked(f.s, is.grantID, second)
}

func testWrongGrant(f *fixture) {
	is := f.issue(f.s)
	other := newGrantID()
	_, err := f.s.GetAccessToken(f.ctx, other, is.tokens.AccessHash)
	f.is(err, store.ErrNotFound, "GetAccessToken under another grant")
	_, err = f.s.GetRefreshToken(f.ctx, other, is.tokens.RefreshHash)
	f.is(err, store.ErrNotFound, "GetRefreshToken under another grant")
	_, err = f.s.PeekCode(f.ctx, other, is.codeHash)
	f.is(err, store.ErrNotFound, "PeekCode under another grant")
	err = f.rotate(f.s, other, is.tokens.RefreshHash, f.pair(other, longTTL, longTTL))
	f.is(err, store.ErrNotFound, "RotateRefreshToken under another grant")
	f.ok(f.s.RevokeAccessToken(f.ctx, other, is.tokens.AccessHash), "RevokeAccessToken under another grant")
	f.tokensLive(f.s, is.grantID, is.tokens, true)
}

func testRevokeAccessToken(f *fixture) {
	is := f.issue(f.s)
	f.ok(f.s.RevokeAccessToken(f.ctx, is.grantID, is.tokens.AccessHash), "RevokeAccessToken")
	_, err := f.s.GetAccessToken(f.ctx, is.grantID, is.tokens.AccessHash)
	f.is(err, store.ErrNotFound, "GetAccessToken after revocation")
	f.ok(f.s.RevokeAccessToken(f.ctx, is.grantID, is.tokens.AccessHash), "second RevokeAccessToken")
	f.ok(f.s.RevokeAccessToken(f.ctx, newGrantID(), randomHex(32)), "RevokeAccessToken of an unknown token")

	_, err = f.s.GetGrant(f.ctx, is.grantID)
	f.ok(err, "GetGrant after revoking one access token")
	_, err = f.s.GetRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash)
	f.ok(err, "GetRefreshToken after revoking one access token")
	f.ok(f.rotate(f.s, is.grantID, is.tokens.RefreshHash, f.pair(is.grantID, longTTL, longTTL)),
		"RotateRefreshToken after revoking one access token")
}

func testRotate(f *fixture) {
	is := f.issue(f.s)
	prev := is.tokens
	var all []store.TokenPair
	for i := range 3 {
		next := f.pair(is.grantID, longTTL, longTTL)
		f.ok(f.rotate(f.s, is.grantID, prev.RefreshHash, next), fmt.Sprintf("rotation #%d", i+1))
		f.tokensLive(f.s, is.grantID, next, true)
		_, err := f.s.GetRefreshToken(f.ctx, is.grantID, prev.RefreshHash)
		f.is(err, store.ErrRefreshReused, "GetRefreshToken of the rotated token")
		// The access token issued with the rotated refresh token lives on.
		at, err := f.s.GetAccessToken(f.ctx, is.grantID, prev.AccessHash)
		f.ok(err, "GetAccessToken of the previous access token")
		f.equal(at, prev.Access, "previous access token")
		all = append(all, next)
		prev = next
	}
	// GetRefreshToken of a rotated token must not have revoked anything.
	for _, p := range all {
		_, err := f.s.GetAccessToken(f.ctx, is.grantID, p.AccessHash)
		f.ok(err, "GetAccessToken after reading rotated refresh tokens")
	}
	_, err := f.s.GetGrant(f.ctx, is.grantID)
	f.ok(err, "GetGrant after rotations")
}

func testRotateAccessOnly(f *fixture) {
	is := f.issue(f.s)
	next := f.pair(is.grantID, longTTL, 0)
	f.ok(f.rotate(f.s, is.grantID, is.tokens.RefreshHash, next), "RotateRefreshToken")
	f.tokensLive(f.s, is.grantID, next, true)
	_, err := f.s.GetRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash)
	f.is(err, store.ErrRefreshReused, "GetRefreshToken of the retired token")
}

func testRefreshReuse(f *fixture) {
	is := f.issue(f.s)
	next := f.pair(is.grantID, longTTL, longTTL)
	f.ok(f.rotate(f.s, is.grantID, is.tokens.RefreshHash, next), "RotateRefreshToken")
	attacker := f.pair(is.grantID, longTTL, longTTL)
	err := f.rotate(f.s, is.grantID, is.tokens.RefreshHash, attacker)
	f.is(err, store.ErrRefreshReused, "RotateRefreshToken with the rotated token")
	f.revoked(f.s, is.grantID, accessOnly(is.tokens), next, attacker)
	_, err = f.s.GetRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash)
	f.is(err, store.ErrRefreshReused, "GetRefreshToken of the rotated token after revocation")
	err = f.rotate(f.s, is.grantID, next.RefreshHash, f.pair(is.grantID, longTTL, longTTL))
	f.is(err, store.ErrGrantRevoked, "RotateRefreshToken with the newest token of the revoked grant")
	err = f.rotate(f.s, is.grantID, is.tokens.RefreshHash, attacker)
	f.is(err, store.ErrRefreshReused, "third use of the rotated token")
}

func testRotateUnknown(f *fixture) {
	grantID := newGrantID()
	next := f.pair(grantID, longTTL, longTTL)
	err := f.rotate(f.s, grantID, randomHex(32), next)
	f.is(err, store.ErrNotFound, "RotateRefreshToken of an unknown token")
	f.tokensLive(f.s, grantID, next, false)

	is := f.issue(f.s)
	err = f.rotate(f.s, is.grantID, randomHex(32), f.pair(is.grantID, longTTL, longTTL))
	f.is(err, store.ErrNotFound, "RotateRefreshToken of an unknown token of a live grant")
	f.tokensLive(f.s, is.grantID, is.tokens, true)
}

func testRevokeGrant(f *fixture) {
	is := f.issue(f.s)
	next := f.pair(is.grantID, longTTL, longTTL)
	f.ok(f.rotate(f.s, is.grantID, is.tokens.RefreshHash, next), "RotateRefreshToken")
	bystander := f.issue(f.s)

	f.ok(f.s.RevokeGrant(f.ctx, is.grantID), "RevokeGrant")
	f.revoked(f.s, is.grantID, accessOnly(is.tokens), next)
	// Another grant of the same user and client is untouched.
	f.tokensLive(f.s, bystander.grantID, bystander.tokens, true)
}

func testRevokeGrantIdempotent(f *fixture) {
	is := f.issue(f.s)
	f.ok(f.s.RevokeGrant(f.ctx, is.grantID), "RevokeGrant")
	f.ok(f.s.RevokeGrant(f.ctx, is.grantID), "second RevokeGrant")
	f.revoked(f.s, is.grantID, is.tokens)
	f.ok(f.s.RevokeGrant(f.ctx, newGrantID()), "RevokeGrant of an unknown grant")
}

func testRevokedRotate(f *fixture) {
	is := f.issue(f.s)
	f.ok(f.s.RevokeGrant(f.ctx, is.grantID), "RevokeGrant")
	next := f.pair(is.grantID, longTTL, longTTL)
	err := f.rotate(f.s, is.grantID, is.tokens.RefreshHash, next)
	f.is(err, store.ErrGrantRevoked, "RotateRefreshToken after RevokeGrant")
	f.revoked(f.s, is.grantID, next)
}

func testRevokedCode(f *fixture) {
	grantID, codeHash := newGrantID(), randomHex(32)
	f.ok(f.s.SaveCode(f.ctx, grantID, codeHash, f.code(longTTL)), "SaveCode")
	f.ok(f.s.RevokeGrant(f.ctx, grantID), "RevokeGrant")
	_, err := f.s.PeekCode(f.ctx, grantID, codeHash)
	f.is(err, store.ErrNotFound, "PeekCode after RevokeGrant")
	tokens := f.pair(grantID, longTTL, longTTL)
	err = f.s.RedeemCode(f.ctx, grantID, codeHash, f.grant(grantID, longTTL), tokens)
	f.is(err, store.ErrGrantRevoked, "RedeemCode after RevokeGrant")
	f.revoked(f.s, grantID, tokens)
	err = f.s.SaveCode(f.ctx, grantID, randomHex(32), f.code(longTTL))
	f.is(err, store.ErrGrantRevoked, "SaveCode under a revoked grant")
}

func testReplayAfterRevoke(f *fixture) {
	is := f.issue(f.s)
	next := f.pair(is.grantID, longTTL, longTTL)
	f.ok(f.rotate(f.s, is.grantID, is.tokens.RefreshHash, next), "RotateRefreshToken")
	f.ok(f.s.RevokeGrant(f.ctx, is.grantID), "RevokeGrant")

	again := f.pair(is.grantID, longTTL, longTTL)
	err := f.s.RedeemCode(f.ctx, is.grantID, is.codeHash, is.grant, again)
	f.is(err, store.ErrCodeReused, "RedeemCode of the redeemed code after RevokeGrant")
	err = f.rotate(f.s, is.grantID, is.tokens.RefreshHash, again)
	f.is(err, store.ErrRefreshReused, "RotateRefreshToken of the rotated token after RevokeGrant")
	f.revoked(f.s, is.grantID, again)
}

func testUpstream(f *fixture) {
	user := "user-" + randomHex(4)
	_, err := f.s.GetUpstreamToken(f.ctx, user)
	f.is(err, store.ErrNotFound, "GetUpstreamToken of an unknown user")

	now := f.now()
	first := store.UpstreamToken{Ciphertext: []byte("sealed-1"), UpdatedAt: now}
	f.ok(f.s.PutUpstreamToken(f.ctx, user, first, longTTL), "PutUpstreamToken")
	got, err := f.s.GetUpstreamToken(f.ctx, user)
	f.ok(err, "GetUpstreamToken")
	f.equal(got, first, "upstream token")

	second := store.UpstreamToken{Ciphertext: []byte{0, 1, 2, 255}, AccessExpiresAt: now.Add(time.Hour), UpdatedAt: now}
	f.ok(f.s.PutUpstreamToken(f.ctx, user, second, longTTL), "second PutUpstreamToken")
	got, err = f.s.GetUpstreamToken(f.ctx, user)
	f.ok(err, "GetUpstreamToken")
	f.equal(got, second, "replaced upstream token")

	refused := store.UpstreamToken{ReloginRequired: true, UpdatedAt: now}
	f.ok(f.s.PutUpstreamToken(f.ctx, user, refused, longTTL), "PutUpstreamToken of a refusal")
	got, err = f.s.GetUpstreamToken(f.ctx, user)
	f.ok(err, "GetUpstreamToken")
	f.equal(got, refused, "the refusal that replaced the upstream token")

	f.ok(f.s.DeleteUpstreamToken(f.ctx, user), "DeleteUpstreamToken")
	_, err = f.s.GetUpstreamToken(f.ctx, user)
	f.is(err, store.ErrNotFound, "GetUpstreamToken after delete")
	f.ok(f.s.DeleteUpstreamToken(f.ctx, user), "second DeleteUpstreamToken")
}

// testAlreadyExpired writes records that are dead on arrival: none may be returned.
func testAlreadyExpired(f *fixture) {
	const past = -time.Minute
	c := f.client("client-"+randomHex(4), past)
	f.ok(f.s.CreateClient(f.ctx, c), "CreateClient")
	_, err := f.s.GetClient(f.ctx, c.ID)
	f.is(err, store.ErrNotFound, "GetClient")
	n, err := f.s.CountClients(f.ctx)
	f.ok(err, "CountClients")
	f.equal(n, 0, "count of expired clients")
	f.ok(f.s.CreateClient(f.ctx, f.client(c.ID, longTTL)), "CreateClient over an expired one")

	state := randomHex(32)
	f.ok(f.s.SavePending(f.ctx, state, f.pending(past)), "SavePending")
	_, err = f.s.TakePending(f.ctx, state)
	f.is(err, store.ErrNotFound, "TakePending")

	grantID, codeHash := newGrantID(), randomHex(32)
	f.ok(f.s.SaveCode(f.ctx, grantID, codeHash, f.code(past)), "SaveCode")
	_, err = f.s.PeekCode(f.ctx, grantID, codeHash)
	f.is(err, store.ErrNotFound, "PeekCode")
	err = f.s.RedeemCode(f.ctx, grantID, codeHash, f.grant(grantID, longTTL), f.pair(grantID, longTTL, longTTL))
	f.is(err, store.ErrNotFound, "RedeemCode")

	grantID, codeHash = newGrantID(), randomHex(32)
	tokens := f.pair(grantID, past, past)
	f.ok(f.s.SaveCode(f.ctx, grantID, codeHash, f.code(longTTL)), "SaveCode")
	f.ok(f.s.RedeemCode(f.ctx, grantID, codeHash, f.grant(grantID, past), tokens), "RedeemCode")
	f.revoked(f.s, grantID, tokens)
	err = f.rotate(f.s, grantID, tokens.RefreshHash, f.pair(grantID, longTTL, longTTL))
	f.is(err, store.ErrNotFound, "RotateRefreshToken")

	user := "user-" + randomHex(4)
	f.ok(f.s.PutUpstreamToken(f.ctx, user, store.UpstreamToken{Ciphertext: []byte("x")}, 0), "PutUpstreamToken")
	_, err = f.s.GetUpstreamToken(f.ctx, user)
	f.is(err, store.ErrNotFound, "GetUpstreamToken")
}

// testExpiry writes one record of every kind that lives shortTTL beside ones that
// live on, reads them all back, lets shortTTL pass once, and checks what is left.
func testExpiry(f *fixture) {
	ctx, s := f.ctx, f.s
	start := f.now()

	shortClient, longClient := f.client("short-"+randomHex(4), shortTTL), f.client("long-"+randomHex(4), longTTL)
	f.ok(s.CreateClient(ctx, shortClient), "CreateClient")
	f.ok(s.CreateClient(ctx, longClient), "CreateClient")

	state := randomHex(32)
	f.ok(s.SavePending(ctx, state, f.pending(shortTTL)), "SavePending")

	// An unredeemed code.
	codeGrant, codeHash := newGrantID(), randomHex(32)
	f.ok(s.SaveCode(ctx, codeGrant, codeHash, f.code(shortTTL)), "SaveCode")

	// A grant whose tokens expire before the grant does.
	tokGrant, tokCode := newGrantID(), randomHex(32)
	shortTokens := f.pair(tokGrant, shortTTL, shortTTL)
	f.ok(s.SaveCode(ctx, tokGrant, tokCode, f.code(shortTTL)), "SaveCode")
	f.ok(s.RedeemCode(ctx, tokGrant, tokCode, f.grant(tokGrant, longTTL), shortTokens), "RedeemCode")

	// A grant that expires as a whole.
	deadGrant, deadCode := newGrantID(), randomHex(32)
	f.ok(s.SaveCode(ctx, deadGrant, deadCode, f.code(shortTTL)), "SaveCode")
	f.ok(s.RedeemCode(ctx, deadGrant, deadCode, f.grant(deadGrant, shortTTL), f.pair(deadGrant, shortTTL, shortTTL)), "RedeemCode")

	// A rotated refresh token whose replay marker expires while the grant lives on.
	rot := f.issue(s)
	rotOld := f.pair(rot.grantID, longTTL, shortTTL)
	rotNew := f.pair(rot.grantID, longTTL, longTTL)
	f.ok(f.rotate(s, rot.grantID, rot.tokens.RefreshHash, rotOld), "RotateRefreshToken")
	f.ok(f.rotate(s, rot.grantID, rotOld.RefreshHash, rotNew), "RotateRefreshToken")

	// A grant revoked while it held only short-lived records: its revocation is
	// forgotten with them.
	revGrant := newGrantID()
	f.ok(s.SaveCode(ctx, revGrant, randomHex(32), f.code(shortTTL)), "SaveCode")
	f.ok(s.RevokeGrant(ctx, revGrant), "RevokeGrant")

	shortUser, longUser := "short-"+randomHex(4), "long-"+randomHex(4)
	f.ok(s.PutUpstreamToken(ctx, shortUser, store.UpstreamToken{Ciphertext: []byte("s")}, shortTTL), "PutUpstreamToken")
	f.ok(s.PutUpstreamToken(ctx, longUser, store.UpstreamToken{Ciphertext: []byte("l")}, longTTL), "PutUpstreamToken")

	// Everything is readable before it expires; otherwise "gone" below proves nothing.
	_, err := s.GetClient(ctx, shortClient.ID)
	f.ok(err, "GetClient before expiry")
	n, err := s.CountClients(ctx)
	f.ok(err, "CountClients before expiry")
	f.equal(n, 2, "client count before expiry")
	_, err = s.PeekCode(ctx, codeGrant, codeHash)
	f.ok(err, "PeekCode before expiry")
	f.tokensLive(s, tokGrant, shortTokens, true)
	_, err = s.GetGrant(ctx, deadGrant)
	f.ok(err, "GetGrant before expiry")
	_, err = s.GetUpstreamToken(ctx, shortUser)
	f.ok(err, "GetUpstreamToken before expiry")
	if elapsed := f.now().Sub(start); elapsed >= shortTTL {
		f.Fatalf("setting up took %s, longer than the short TTL %s: the machine is too slow for this test", elapsed, shortTTL)
	}
	// The pending authorization is checked after the wait only: taking it would consume it.

	f.h.Wait(start.Add(shortTTL).Sub(f.now()) + 100*time.Millisecond)

	f.run("clients", func(f *fixture) {
		_, err := s.GetClient(ctx, shortClient.ID)
		f.is(err, store.ErrNotFound, "GetClient of an expired client")
		n, err := s.CountClients(ctx)
		f.ok(err, "CountClients")
		f.equal(n, 1, "client count after expiry")
		f.is(s.UpdateClient(ctx, shortClient), store.ErrNotFound, "UpdateClient of an expired client")
		f.ok(s.CreateClient(ctx, shortClient), "CreateClient over an expired client")
	})
	f.run("pending authorizations", func(f *fixture) {
		_, err := s.TakePending(ctx, state)
		f.is(err, store.ErrNotFound, "TakePending of an expired record")
	})
	f.run("codes", func(f *fixture) {
		_, err := s.PeekCode(ctx, codeGrant, codeHash)
		f.is(err, store.ErrNotFound, "PeekCode of an expired code")
		err = s.RedeemCode(ctx, codeGrant, codeHash, f.grant(codeGrant, longTTL), f.pair(codeGrant, longTTL, longTTL))
		f.is(err, store.ErrNotFound, "RedeemCode of an expired code")
	})
	f.run("access and refresh tokens", func(f *fixture) {
		f.tokensLive(s, tokGrant, shortTokens, false)
		err := f.rotate(s, tokGrant, shortTokens.RefreshHash, f.pair(tokGrant, longTTL, longTTL))
		f.is(err, store.ErrNotFound, "RotateRefreshToken of an expired token")
		_, err = s.GetGrant(ctx, tokGrant)
		f.ok(err, "GetGrant of the grant that outlives its tokens")
		// The code's replay marker expired with the code: a late replay is unknown,
		// and does not revoke the grant.
		err = s.RedeemCode(ctx, tokGrant, tokCode, f.grant(tokGrant, longTTL), f.pair(tokGrant, longTTL, longTTL))
		f.is(err, store.ErrNotFound, "RedeemCode of a redeemed code after its expiry")
		_, err = s.GetGrant(ctx, tokGrant)
		f.ok(err, "GetGrant after a late replay")
	})
	f.run("grants", func(f *fixture) {
		_, err := s.GetGrant(ctx, deadGrant)
		f.is(err, store.ErrNotFound, "GetGrant of an expired grant")
	})
	f.run("replay markers of rotated refresh tokens", func(f *fixture) {
		err := f.rotate(s, rot.grantID, rotOld.RefreshHash, f.pair(rot.grantID, longTTL, longTTL))
		f.is(err, store.ErrNotFound, "RotateRefreshToken of a rotated token after its expiry")
		f.tokensLive(s, rot.grantID, rotNew, true)
		// The marker of a token rotated before, which lives longTTL, still works.
		_, err = s.GetRefreshToken(ctx, rot.grantID, rot.tokens.RefreshHash)
		f.is(err, store.ErrRefreshReused, "GetRefreshToken of a rotated long-lived token")
	})
	f.run("revocations", func(f *fixture) {
		f.ok(s.SaveCode(ctx, revGrant, randomHex(32), f.code(longTTL)), "SaveCode under a grant whose revocation expired")
	})
	f.run("upstream tokens", func(f *fixture) {
		_, err := s.GetUpstreamToken(ctx, shortUser)
		f.is(err, store.ErrNotFound, "GetUpstreamToken of an expired token")
		_, err = s.GetUpstreamToken(ctx, longUser)
		f.ok(err, "GetUpstreamToken of a live token")
	})
}

func testTenantIsolation(f *fixture) {
	prefix := "tenant-" + randomHex(4)
	a, b := f.newStore(prefix+"-a"), f.newStore(prefix+"-b")
	ctx := f.ctx

	c := f.client("shared-id", longTTL)
	f.ok(a.CreateClient(ctx, c), "CreateClient in a")
	state := randomHex(32)
	f.ok(a.SavePending(ctx, state, f.pending(longTTL)), "SavePending in a")
	is := f.issue(a)
	user := "user-1"
	f.ok(a.PutUpstreamToken(ctx, user, store.UpstreamToken{Ciphertext: []byte("a")}, longTTL), "PutUpstreamToken in a")

	_, err := b.GetClient(ctx, c.ID)
	f.is(err, store.ErrNotFound, "GetClient in b")
	n, err := b.CountClients(ctx)
	f.ok(err, "CountClients in b")
	f.equal(n, 0, "client count in b")
	_, err = b.TakePending(ctx, state)
	f.is(err, store.ErrNotFound, "TakePending in b")
	_, err = b.GetGrant(ctx, is.grantID)
	f.is(err, store.ErrNotFound, "GetGrant in b")
	_, err = b.PeekCode(ctx, is.grantID, is.codeHash)
	f.is(err, store.ErrNotFound, "PeekCode in b")
	f.tokensLive(b, is.grantID, is.tokens, false)
	_, err = b.GetUpstreamToken(ctx, user)
	f.is(err, store.ErrNotFound, "GetUpstreamToken in b")

	// b's writes under the same names leave a's records alone.
	f.ok(b.CreateClient(ctx, f.client(c.ID, longTTL)), "CreateClient in b with a's client ID")
	f.ok(b.DeleteClient(ctx, c.ID), "DeleteClient in b")
	f.ok(b.RevokeGrant(ctx, is.grantID), "RevokeGrant in b")
	err = f.rotate(b, is.grantID, is.tokens.RefreshHash, f.pair(is.grantID, longTTL, longTTL))
	f.is(err, store.ErrNotFound, "RotateRefreshToken in b")
	f.ok(b.DeleteUpstreamToken(ctx, user), "DeleteUpstreamToken in b")

	got, err := a.GetClient(ctx, c.ID)
	f.ok(err, "GetClient in a")
	f.equal(got, c, "a's client")
	_, err = a.TakePending(ctx, state)
	f.ok(err, "TakePending in a")
	f.tokensLive(a, is.grantID, is.tokens, true)
	_, err = a.GetUpstreamToken(ctx, user)
	f.ok(err, "GetUpstreamToken in a")
}

func testPing(f *fixture) {
	f.ok(f.s.Ping(f.ctx), "Ping")
}

// racers is how many goroutines each concurrency test races.
const racers = 16

// race runs op in racers goroutines released together and returns their errors.
func race(op func(i int) error) []error {
	errs := make([]error, racers)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range racers {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			errs[i] = op(i)
		}()
	}
	close(start)
	for range racers {
		<-done
	}
	return errs
}

// oneWinner asserts that exactly one error is nil and every other one is loser.
func (f *fixture) oneWinner(errs []error, loser error) int {
	f.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			f.Errorf("racers %d and %d both succeeded", winner, i)
		case !errors.Is(err, loser):
			f.Errorf("racer %d: got error %v, want %v", i, err, loser)
		}
	}
	if winner < 0 {
		f.Fatalf("no racer succeeded: %v", errs)
	}
	return winner
}

func testConcurrentRedeem(f *fixture) {
	grantID, codeHash := newGrantID(), randomHex(32)
	f.ok(f.s.SaveCode(f.ctx, grantID, codeHash, f.code(longTTL)), "SaveCode")
	pairs := make([]store.TokenPair, racers)
	for i := range pairs {
		pairs[i] = f.pair(grantID, longTTL, longTTL)
	}
	g := f.grant(grantID, longTTL)
	errs := race(func(i int) error { return f.s.RedeemCode(f.ctx, grantID, codeHash, g, pairs[i]) })
	f.oneWinner(errs, store.ErrCodeReused)
	f.revoked(f.s, grantID, pairs...)
}

func testConcurrentRotate(f *fixture) {
	is := f.issue(f.s)
	pairs := make([]store.TokenPair, racers)
	for i := range pairs {
		pairs[i] = f.pair(is.grantID, longTTL, longTTL)
	}
	errs := race(func(i int) error {
		return f.rotate(f.s, is.grantID, is.tokens.RefreshHash, pairs[i])
	})
	f.oneWinner(errs, store.ErrRefreshReused)
	f.revoked(f.s, is.grantID, append(pairs, accessOnly(is.tokens))...)
}

func testConcurrentTake(f *fixture) {
	state, p := randomHex(32), f.pending(longTTL)
	f.ok(f.s.SavePending(f.ctx, state, p), "SavePending")
	got := make([]store.PendingAuthorization, racers)
	errs := race(func(i int) (err error) {
		got[i], err = f.s.TakePending(f.ctx, state)
		return err
	})
	winner := f.oneWinner(errs, store.ErrNotFound)
	f.equal(got[winner], p, "the winner's pending authorization")
}

func testConcurrentCreateClient(f *fixture) {
	id := "client-" + randomHex(4)
	clients := make([]store.Client, racers)
	for i := range clients {
		clients[i] = f.client(id, longTTL)
	}
	errs := race(func(i int) error { return f.s.CreateClient(f.ctx, clients[i]) })
	winner := f.oneWinner(errs, store.ErrAlreadyExists)
	got, err := f.s.GetClient(f.ctx, id)
	f.ok(err, "GetClient")
	f.equal(got, clients[winner], "the winner's client")
	n, err := f.s.CountClients(f.ctx)
	f.ok(err, "CountClients")
	f.equal(n, 1, "client count")
}

// newGrantID returns a random grant ID, as the server makes them.
func newGrantID() string { return "g" + randomHex(12) }

// randomHex returns n random bytes in hex: stand-ins for hashes and IDs.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func testReadTokenRequest(f *fixture) {
	c := f.client("client-"+randomHex(4), longTTL)
	f.ok(f.s.CreateClient(f.ctx, c), "CreateClient")
	grantID, codeHash, code := newGrantID(), randomHex(32), f.code(longTTL)
	f.ok(f.s.SaveCode(f.ctx, grantID, codeHash, code), "SaveCode")

	got := store.ReadTokenRequest(f.ctx, f.s, store.TokenRequestKeys{ClientID: c.ID, GrantID: grantID, CodeHash: codeHash})
	f.ok(got.ClientErr, "ReadTokenRequest: client")
	f.equal(got.Client, c, "client")
	f.ok(got.CodeErr, "ReadTokenRequest: code")
	f.equal(got.Code, code, "code")
	f.equal(got.Refresh, store.Token{}, "refresh token not asked for")
	f.ok(got.RefreshErr, "ReadTokenRequest: refresh token not asked for")

	pair := f.pair(grantID, longTTL, longTTL)
	f.ok(f.s.RedeemCode(f.ctx, grantID, codeHash, f.grant(grantID, longTTL), pair), "RedeemCode")
	got = store.ReadTokenRequest(f.ctx, f.s, store.TokenRequestKeys{ClientID: c.ID, GrantID: grantID, CodeHash: codeHash})
	f.is(got.CodeErr, store.ErrCodeReused, "ReadTokenRequest of a redeemed code")
	got = store.ReadTokenRequest(f.ctx, f.s, store.TokenRequestKeys{ClientID: c.ID, GrantID: grantID, RefreshHash: pair.RefreshHash})
	f.ok(got.ClientErr, "ReadTokenRequest: client")
	f.ok(got.RefreshErr, "ReadTokenRequest: refresh token")
	f.equal(got.Refresh, pair.Refresh, "refresh token")
	f.equal(got.Code, store.AuthorizationCode{}, "code not asked for")

	f.ok(f.rotate(f.s, grantID, pair.RefreshHash, f.pair(grantID, longTTL, longTTL)), "RotateRefreshToken")
	got = store.ReadTokenRequest(f.ctx, f.s, store.TokenRequestKeys{ClientID: "no-such-client", GrantID: grantID, RefreshHash: pair.RefreshHash})
	f.is(got.ClientErr, store.ErrNotFound, "ReadTokenRequest of an unknown client")
	f.is(got.RefreshErr, store.ErrRefreshReused, "ReadTokenRequest of a rotated refresh token")
	got = store.ReadTokenRequest(f.ctx, f.s, store.TokenRequestKeys{ClientID: c.ID, GrantID: newGrantID(), RefreshHash: randomHex(32)})
	f.is(got.RefreshErr, store.ErrNotFound, "ReadTokenRequest of an unknown refresh token")
}

func testSaveLogin(f *fixture) {
	user, grantID, codeHash, code := "user-"+randomHex(4), newGrantID(), randomHex(32), f.code(longTTL)
	up := store.UpstreamToken{Ciphertext: []byte("sealed"), AccessExpiresAt: f.now().Add(time.Hour), UpdatedAt: f.now()}
	l := store.Login{UserID: user, Upstream: up, UpstreamTTL: longTTL, GrantID: grantID, CodeHash: codeHash, Code: code}
	f.ok(store.SaveLogin(f.ctx, f.s, l), "SaveLogin")
	got, err := f.s.GetUpstreamToken(f.ctx, user)
	f.ok(err, "GetUpstreamToken")
	f.equal(got, up, "upstream token")
	c, err := f.s.PeekCode(f.ctx, grantID, codeHash)
	f.ok(err, "PeekCode")
	f.equal(c, code, "code")

	f.is(store.SaveLogin(f.ctx, f.s, l), store.ErrAlreadyExists, "SaveLogin of a saved code")
	f.ok(f.s.RevokeGrant(f.ctx, grantID), "RevokeGrant")
	l.CodeHash = randomHex(32)
	f.is(store.SaveLogin(f.ctx, f.s, l), store.ErrGrantRevoked, "SaveLogin under a revoked grant")
}

// issueFor issues a grant of user to client, all records living ttl.
func (f *fixture) issueFor(s store.Store, user, client string, ttl time.Duration) store.Grant {
	f.Helper()
	grantID, codeHash := newGrantID(), randomHex(32)
	c := f.code(ttl)
	c.UserID, c.ClientID = user, client
	g := f.grant(grantID, ttl)
	g.UserID, g.ClientID = user, client
	p := f.pair(grantID, ttl, ttl)
	p.Access.UserID, p.Access.ClientID, p.Refresh.UserID, p.Refresh.ClientID = user, client, user, client
	f.ok(s.SaveCode(f.ctx, grantID, codeHash, c), "SaveCode")
	f.ok(s.RedeemCode(f.ctx, grantID, codeHash, g, p), "RedeemCode")
	return g
}

// sorted returns gs in ListGrants's order.
func sorted(gs ...store.Grant) []store.Grant {
	store.SortGrants(gs)
	return gs
}

// grantIDs returns the IDs of gs in order.
func grantIDs(gs []store.Grant) []string {
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = g.ID
	}
	return ids
}

// listed calls ListGrants and compares the IDs it returns, in order, with want.
func (f *fixture) listed(s store.Store, filter store.GrantFilter, want ...store.Grant) []store.Grant {
	f.Helper()
	got, err := s.ListGrants(f.ctx, filter)
	f.ok(err, fmt.Sprintf("ListGrants(%+v)", filter))
	f.equal(grantIDs(got), grantIDs(want), fmt.Sprintf("grants listed for %+v", filter))
	return got
}

func testListGrants(f *fixture) {
	alice, bob := "alice-"+randomHex(4), "bob-"+randomHex(4)
	app, ide := "app-"+randomHex(4), "ide-"+randomHex(4)
	aliceApp := f.issueFor(f.s, alice, app, longTTL)
	aliceIDE := f.issueFor(f.s, alice, ide, longTTL)
	bobApp := f.issueFor(f.s, bob, app, longTTL)
	aliceApp2 := f.issueFor(f.s, alice, app, longTTL)
	// AuthTime orders the list; equal times (a coarse clock) fall back to the ID.
	all := []store.Grant{aliceApp, aliceIDE, bobApp, aliceApp2}
	store.SortGrants(all)

	got := f.listed(f.s, store.GrantFilter{UserID: alice}, sorted(aliceApp, aliceIDE, aliceApp2)...)
	if len(got) > 0 {
		f.equal(got[0], sorted(aliceApp, aliceIDE, aliceApp2)[0], "a listed grant is the stored record")
	}
	f.listed(f.s, store.GrantFilter{ClientID: app}, sorted(aliceApp, bobApp, aliceApp2)...)
	f.listed(f.s, store.GrantFilter{UserID: alice, ClientID: app}, sorted(aliceApp, aliceApp2)...)
	f.listed(f.s, store.GrantFilter{UserID: bob, ClientID: ide})
	f.listed(f.s, store.GrantFilter{UserID: "nobody"})
	f.listed(f.s, store.GrantFilter{}, all...)

	// Rotation keeps a grant listed once.
	is := f.issue(f.s)
	_, err := f.s.RotateRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash, f.pair(is.grantID, longTTL, longTTL), store.Successor{})
	f.ok(err, "RotateRefreshToken")
	f.listed(f.s, store.GrantFilter{UserID: is.grant.UserID}, is.grant)
}

func testListGrantsLiveOnly(f *fixture) {
	user, client := "user-"+randomHex(4), "client-"+randomHex(4)
	start := f.now()
	live := f.issueFor(f.s, user, client, longTTL)
	revoked := f.issueFor(f.s, user, client, longTTL)
	short := f.issueFor(f.s, user, client, shortTTL)
	reused := f.issueFor(f.s, user, client, longTTL)
	// A code not yet redeemed is no grant yet.
	pending := f.code(longTTL)
	pending.UserID, pending.ClientID = user, client
	f.ok(f.s.SaveCode(f.ctx, newGrantID(), randomHex(32), pending), "SaveCode")

	f.ok(f.s.RevokeGrant(f.ctx, revoked.ID), "RevokeGrant")
	f.listed(f.s, store.GrantFilter{UserID: user}, sorted(live, short, reused)...)
	// A replayed code revokes its grant inside the store: the index learns of it too.
	var replayed issued
	replayed.grantID, replayed.codeHash = newGrantID(), randomHex(32)
	c := f.code(longTTL)
	c.UserID, c.ClientID = user, client
	g := f.grant(replayed.grantID, longTTL)
	g.UserID, g.ClientID = user, client
	f.ok(f.s.SaveCode(f.ctx, replayed.grantID, replayed.codeHash, c), "SaveCode")
	f.ok(f.s.RedeemCode(f.ctx, replayed.grantID, replayed.codeHash, g, f.pair(replayed.grantID, longTTL, longTTL)), "RedeemCode")
	err := f.s.RedeemCode(f.ctx, replayed.grantID, replayed.codeHash, g, f.pair(replayed.grantID, longTTL, longTTL))
	f.is(err, store.ErrCodeReused, "RedeemCode replayed")
	f.listed(f.s, store.GrantFilter{ClientID: client}, sorted(live, short, reused)...)
	if elapsed := f.now().Sub(start); elapsed >= shortTTL {
		f.Fatalf("setting up took %s, longer than the short TTL %s: the machine is too slow for this test", elapsed, shortTTL)
	}

	f.h.Wait(start.Add(shortTTL).Sub(f.now()) + 100*time.Millisecond)
	f.listed(f.s, store.GrantFilter{UserID: user}, sorted(live, reused)...)
	f.listed(f.s, store.GrantFilter{ClientID: client}, sorted(live, reused)...)
	f.listed(f.s, store.GrantFilter{}, sorted(live, reused)...)

	// Revoking what a list names empties it, and it stays empty.
	for _, g := range []store.Grant{live, reused} {
		f.ok(f.s.RevokeGrant(f.ctx, g.ID), "RevokeGrant")
	}
	f.listed(f.s, store.GrantFilter{})
	f.listed(f.s, store.GrantFilter{UserID: user})
	f.listed(f.s, store.GrantFilter{UserID: user})
}

func testListGrantsTenant(f *fixture) {
	prefix := "tenant-" + randomHex(4)
	a, b := f.newStore(prefix+"-a"), f.newStore(prefix+"-b")
	g := f.issueFor(a, "shared-user", "shared-client", longTTL)
	f.listed(a, store.GrantFilter{UserID: "shared-user"}, g)
	f.listed(b, store.GrantFilter{UserID: "shared-user"})
	f.listed(b, store.GrantFilter{ClientID: "shared-client"})
	f.listed(b, store.GrantFilter{})
	f.listed(a, store.GrantFilter{}, g)
}

func testConcurrentIndex(f *fixture) {
	user, client := "user-"+randomHex(4), "client-"+randomHex(4)
	grants := make([]store.Grant, racers)
	codes := make([]string, racers)
	for i := range grants {
		grants[i] = f.grant(newGrantID(), longTTL)
		grants[i].UserID, grants[i].ClientID = user, client
		codes[i] = randomHex(32)
		c := f.code(longTTL)
		c.UserID, c.ClientID = user, client
		f.ok(f.s.SaveCode(f.ctx, grants[i].ID, codes[i], c), "SaveCode")
	}
	errs := race(func(i int) error {
		return f.s.RedeemCode(f.ctx, grants[i].ID, codes[i], grants[i], f.pair(grants[i].ID, longTTL, longTTL))
	})
	for i, err := range errs {
		f.ok(err, fmt.Sprintf("RedeemCode %d", i))
	}
	want := sorted(grants...)
	f.listed(f.s, store.GrantFilter{UserID: user}, want...)
	f.listed(f.s, store.GrantFilter{ClientID: client}, want...)
	// Revoking them while others list them leaves nothing listed.
	errs = race(func(i int) error {
		if i%2 == 0 {
			_, err := f.s.ListGrants(f.ctx, store.GrantFilter{UserID: user})
			return err
		}
		for _, g := range grants[i/2*2 : i/2*2+2] {
			if err := f.s.RevokeGrant(f.ctx, g.ID); err != nil {
				return err
			}
		}
		return nil
	})
	for i, err := range errs {
		f.ok(err, fmt.Sprintf("racer %d", i))
	}
	f.listed(f.s, store.GrantFilter{UserID: user})
	f.listed(f.s, store.GrantFilter{ClientID: client})
}

// successor is a stand-in for a sealed token response, kept for ttl.
func (f *fixture) successor(clientID string, ttl time.Duration) store.Successor {
	return store.Successor{ClientID: clientID, Sealed: []byte("sealed\x00" + randomHex(16)), Until: f.now().Add(ttl)}
}

// settle presents a rotated refresh token again, as the server does when its read
// answered ErrRefreshReused: with no pair to store, only the client named.
func (f *fixture) settle(s store.Store, grantID, oldHash, clientID string) ([]byte, error) {
	return s.RotateRefreshToken(f.ctx, grantID, oldHash, store.TokenPair{}, store.Successor{ClientID: clientID})
}

func testWindowSameClient(f *fixture) {
	is := f.issue(f.s)
	next := f.pair(is.grantID, longTTL, longTTL)
	succ := f.successor("client-1", longTTL)
	prior, err := f.s.RotateRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash, next, succ)
	f.ok(err, "RotateRefreshToken with a window")
	f.equal(prior, []byte(nil), "what a rotation that rotated returns")
	_, err = f.s.GetRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash)
	f.is(err, store.ErrRefreshReused, "GetRefreshToken of the rotated token inside the window")

	// A second rotation of the same token with a pair of its own: the first one's
	// successor comes back, and the second pair is not stored.
	again := f.pair(is.grantID, longTTL, longTTL)
	prior, err = f.s.RotateRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash, again, f.successor("client-1", longTTL))
	f.ok(err, "RotateRefreshToken of the rotated token by the same client")
	f.equal(prior, succ.Sealed, "the successor returned inside the window")
	f.tokensLive(f.s, is.grantID, again, false)
	// Presented again with no pair, as after a read that said ErrRefreshReused.
	prior, err = f.settle(f.s, is.grantID, is.tokens.RefreshHash, "client-1")
	f.ok(err, "RotateRefreshToken with no pair, of the rotated token, by the same client")
	f.equal(prior, succ.Sealed, "the successor returned to a presentation with no pair")
	// Nothing was revoked: the rotation's pair and the first access token live.
	f.tokensLive(f.s, is.grantID, next, true)
	f.tokensLive(f.s, is.grantID, accessOnly(is.tokens), true)
	_, err = f.s.GetGrant(f.ctx, is.grantID)
	f.ok(err, "GetGrant after reuse inside the window")

	// The successor's own rotation keeps its own successor; the first one stays.
	third, succ2 := f.pair(is.grantID, longTTL, longTTL), f.successor("client-1", longTTL)
	prior, err = f.s.RotateRefreshToken(f.ctx, is.grantID, next.RefreshHash, third, succ2)
	f.ok(err, "RotateRefreshToken of the successor")
	f.equal(prior, []byte(nil), "what the successor's rotation returns")
	prior, err = f.settle(f.s, is.grantID, next.RefreshHash, "client-1")
	f.ok(err, "reuse of the successor's refresh token")
	f.equal(prior, succ2.Sealed, "the second rotation's successor")
	prior, err = f.settle(f.s, is.grantID, is.tokens.RefreshHash, "client-1")
	f.ok(err, "reuse of the first refresh token after a later rotation")
	f.equal(prior, succ.Sealed, "the first rotation's successor")

	// A zero pair never rotates a current token.
	prior, err = f.settle(f.s, is.grantID, third.RefreshHash, "client-1")
	if err == nil || prior != nil || errors.Is(err, store.ErrRefreshReused) || errors.Is(err, store.ErrNotFound) {
		f.Errorf("RotateRefreshToken of a current token with no pair: %q, %v; want a plain error", prior, err)
	}
	f.tokensLive(f.s, is.grantID, third, true)
}

func testWindowOtherClient(f *fixture) {
	for _, c := range []struct{ name, client string }{
		{"another client", "client-2"},
		{"no client named", ""},
	} {
		f.run(c.name, func(f *fixture) {
			is := f.issue(f.s)
			next := f.pair(is.grantID, longTTL, longTTL)
			_, err := f.s.RotateRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash, next, f.successor("client-1", longTTL))
			f.ok(err, "RotateRefreshToken with a window")
			attacker := f.pair(is.grantID, longTTL, longTTL)
			prior, err := f.s.RotateRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash, attacker, store.Successor{ClientID: c.client})
			f.is(err, store.ErrRefreshReused, "reuse inside the window by "+c.name)
			f.equal(prior, []byte(nil), "what "+c.name+" gets")
			f.revoked(f.s, is.grantID, accessOnly(is.tokens), next, attacker)
			// The legitimate client's reuse now finds a revoked grant: no successor.
			prior, err = f.settle(f.s, is.grantID, is.tokens.RefreshHash, "client-1")
			f.is(err, store.ErrRefreshReused, "the same client's reuse after the revocation")
			f.equal(prior, []byte(nil), "what the same client gets after the revocation")
		})
	}
}

func testWindowExpiry(f *fixture) {
	start := f.now()
	is := f.issue(f.s)
	next := f.pair(is.grantID, longTTL, longTTL)
	succ := f.successor("client-1", shortTTL)
	_, err := f.s.RotateRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash, next, succ)
	f.ok(err, "RotateRefreshToken with a short window")
	prior, err := f.settle(f.s, is.grantID, is.tokens.RefreshHash, "client-1")
	f.ok(err, "reuse inside the window")
	f.equal(prior, succ.Sealed, "the successor inside the window")
	if elapsed := f.now().Sub(start); elapsed >= shortTTL {
		f.Fatalf("setting up took %s, longer than the window %s: the machine is too slow for this test", elapsed, shortTTL)
	}

	f.h.Wait(start.Add(shortTTL).Sub(f.now()) + 100*time.Millisecond)
	prior, err = f.settle(f.s, is.grantID, is.tokens.RefreshHash, "client-1")
	f.is(err, store.ErrRefreshReused, "reuse by the same client after the window")
	f.equal(prior, []byte(nil), "what a reuse after the window gets")
	f.revoked(f.s, is.grantID, accessOnly(is.tokens), next)

	// A rotation whose window ended before it was made keeps nothing.
	is = f.issue(f.s)
	dead := store.Successor{ClientID: "client-1", Sealed: []byte("sealed"), Until: f.now().Add(-time.Second)}
	_, err = f.s.RotateRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash, f.pair(is.grantID, longTTL, longTTL), dead)
	f.ok(err, "RotateRefreshToken with a window in the past")
	_, err = f.settle(f.s, is.grantID, is.tokens.RefreshHash, "client-1")
	f.is(err, store.ErrRefreshReused, "reuse after a rotation with a past window")
}

func testWindowRevoked(f *fixture) {
	is := f.issue(f.s)
	next := f.pair(is.grantID, longTTL, longTTL)
	_, err := f.s.RotateRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash, next, f.successor("client-1", longTTL))
	f.ok(err, "RotateRefreshToken with a window")
	f.ok(f.s.RevokeGrant(f.ctx, is.grantID), "RevokeGrant")
	prior, err := f.settle(f.s, is.grantID, is.tokens.RefreshHash, "client-1")
	f.is(err, store.ErrRefreshReused, "reuse inside the window of a revoked grant")
	f.equal(prior, []byte(nil), "what a reuse of a revoked grant's token gets")
	f.revoked(f.s, is.grantID, next)
}

func testConcurrentRotateInWindow(f *fixture) {
	is := f.issue(f.s)
	pairs := make([]store.TokenPair, racers)
	succs := make([]store.Successor, racers)
	for i := range pairs {
		pairs[i], succs[i] = f.pair(is.grantID, longTTL, longTTL), f.successor("client-1", longTTL)
	}
	// Half the racers go through a second store value of the tenant, as a second
	// replica would.
	replicas := []store.Store{f.s, f.newStore(f.prefix())}
	priors := make([][]byte, racers)
	errs := race(func(i int) (err error) {
		priors[i], err = replicas[i%2].RotateRefreshToken(f.ctx, is.grantID, is.tokens.RefreshHash, pairs[i], succs[i])
		return err
	})
	winner := -1
	for i := range racers {
		f.ok(errs[i], fmt.Sprintf("racer %d", i))
		if priors[i] == nil {
			if winner >= 0 {
				f.Errorf("racers %d and %d both rotated", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		f.Fatal("no racer rotated")
	}
	for i := range racers {
		if i != winner {
			f.equal(priors[i], succs[winner].Sealed, fmt.Sprintf("racer %d's successor", i))
			f.tokensLive(f.s, is.grantID, pairs[i], false)
		}
	}
	f.tokensLive(f.s, is.grantID, pairs[winner], true)
	_, err := f.s.GetGrant(f.ctx, is.grantID)
	f.ok(err, "GetGrant after the race")
}

func testLease(f *fixture) {
	name := "upstream:user-" + randomHex(4)
	replica := f.newStore(f.prefix())
	ok, err := f.s.AcquireLease(f.ctx, name, longTTL)
	f.ok(err, "AcquireLease")
	f.equal(ok, true, "the first acquisition")
	for who, s := range map[string]store.Store{"the holder": f.s, "another store of the tenant": replica} {
		ok, err = s.AcquireLease(f.ctx, name, longTTL)
		f.ok(err, "AcquireLease by "+who)
		f.equal(ok, false, "an acquisition of a held lease by "+who)
	}
	ok, err = f.s.AcquireLease(f.ctx, "other-"+name, longTTL)
	f.ok(err, "AcquireLease of another name")
	f.equal(ok, true, "an acquisition of another name")
	other := f.newStore("storetest-" + randomHex(6))
	ok, err = other.AcquireLease(f.ctx, name, longTTL)
	f.ok(err, "AcquireLease in another tenant")
	f.equal(ok, true, "an acquisition of the same name in another tenant")

	f.ok(replica.ReleaseLease(f.ctx, name), "ReleaseLease by a store that does not hold it")
	ok, err = replica.AcquireLease(f.ctx, name, longTTL)
	f.ok(err, "AcquireLease")
	f.equal(ok, false, "an acquisition after another store's release: still held")

	f.ok(f.s.ReleaseLease(f.ctx, name), "ReleaseLease by the holder")
	f.ok(f.s.ReleaseLease(f.ctx, name), "second ReleaseLease")
	f.ok(f.s.ReleaseLease(f.ctx, "never-taken-"+randomHex(4)), "ReleaseLease of a lease never taken")
	ok, err = replica.AcquireLease(f.ctx, name, longTTL)
	f.ok(err, "AcquireLease after the release")
	f.equal(ok, true, "an acquisition after the holder's release")

	ok, err = f.s.AcquireLease(f.ctx, "zero-"+name, 0)
	f.ok(err, "AcquireLease with a zero ttl")
	f.equal(ok, false, "an acquisition with a zero ttl")
	ok, err = replica.AcquireLease(f.ctx, "zero-"+name, longTTL)
	f.ok(err, "AcquireLease after one with a zero ttl")
	f.equal(ok, true, "an acquisition after one with a zero ttl")
}

func testLeaseExpiry(f *fixture) {
	name := "upstream:user-" + randomHex(4)
	replica := f.newStore(f.prefix())
	start := f.now()
	ok, err := f.s.AcquireLease(f.ctx, name, shortTTL)
	f.ok(err, "AcquireLease")
	f.equal(ok, true, "the first acquisition")
	ok, err = replica.AcquireLease(f.ctx, name, longTTL)
	f.ok(err, "AcquireLease by another store")
	f.equal(ok, false, "an acquisition before the ttl passed")
	if elapsed := f.now().Sub(start); elapsed >= shortTTL {
		f.Fatalf("setting up took %s, longer than the ttl %s: the machine is too slow for this test", elapsed, shortTTL)
	}

	f.h.Wait(start.Add(shortTTL).Sub(f.now()) + 100*time.Millisecond)
	ok, err = replica.AcquireLease(f.ctx, name, longTTL)
	f.ok(err, "AcquireLease after the ttl")
	f.equal(ok, true, "an acquisition after the ttl passed")
	// The first holder, late, releases what is no longer its lease.
	f.ok(f.s.ReleaseLease(f.ctx, name), "a late ReleaseLease by the expired holder")
	ok, err = f.s.AcquireLease(f.ctx, name, longTTL)
	f.ok(err, "AcquireLease")
	f.equal(ok, false, "an acquisition after the expired holder's release: the new holder keeps it")
}

func testConcurrentLease(f *fixture) {
	for _, c := range []struct {
		name   string
		stores func() []store.Store
	}{
		{"one store value", func() []store.Store {
			out := make([]store.Store, racers)
			for i := range out {
				out[i] = f.s
			}
			return out
		}},
		{"a store value each", func() []store.Store {
			out := make([]store.Store, racers)
			for i := range out {
				out[i] = f.newStore(f.prefix())
			}
			return out
		}},
	} {
		f.run(c.name, func(f *fixture) {
			stores, name := c.stores(), "lease-"+randomHex(4)
			errs := race(func(i int) error {
				ok, err := stores[i].AcquireLease(f.ctx, name, longTTL)
				if err == nil && !ok {
					return errLeaseHeld
				}
				return err
			})
			f.oneWinner(errs, errLeaseHeld)
		})
	}
}

// errLeaseHeld stands for a lost lease race, for oneWinner.
var errLeaseHeld = errors.New("lease held")

// feed reads the whole feed and fails the test on error.
func (f *fixture) feed(s store.Store, since time.Time) []store.Revocation {
	f.Helper()
	out, err := s.Revocations(f.ctx, since)
	f.ok(err, "Revocations")
	return out
}

// inFeed returns the latest entry for grantID and jti, or false.
func inFeed(feed []store.Revocation, grantID, jti string) (store.Revocation, bool) {
	var found store.Revocation
	ok := false
	for _, r := range feed {
		if r.GrantID == grantID && r.TokenID == jti && (!ok || !r.At.Before(found.At)) {
			found, ok = r, true
		}
	}
	return found, ok
}

func testFeedGrantRevocations(f *fixture) {
	before := f.now().Add(-time.Second)
	revoked := f.issue(f.s)
	f.ok(f.s.RevokeGrant(f.ctx, revoked.grantID), "RevokeGrant")

	replayed := f.issue(f.s)
	err := f.s.RedeemCode(f.ctx, replayed.grantID, replayed.codeHash, replayed.grant, f.pair(replayed.grantID, longTTL, longTTL))
	f.is(err, store.ErrCodeReused, "second RedeemCode")

	reused := f.issue(f.s)
	_, err = f.s.RotateRefreshToken(f.ctx, reused.grantID, reused.tokens.RefreshHash, f.pair(reused.grantID, longTTL, longTTL), store.Successor{})
	f.ok(err, "RotateRefreshToken")
	_, err = f.s.RotateRefreshToken(f.ctx, reused.grantID, reused.tokens.RefreshHash, f.pair(reused.grantID, longTTL, longTTL), store.Successor{})
	f.is(err, store.ErrRefreshReused, "RotateRefreshToken with the rotated token")

	live := f.issue(f.s)
	feed := f.feed(f.s, time.Time{})
	for name, id := range map[string]string{"RevokeGrant": revoked.grantID, "a replayed code": replayed.grantID, "a reused refresh token": reused.grantID} {
		r, ok := inFeed(feed, id, "")
		if !ok {
			f.Errorf("the grant revoked by %s is not in the feed %+v", name, feed)
			continue
		}
		if r.At.Before(before) || r.At.After(f.now().Add(time.Second)) {
			f.Errorf("the grant revoked by %s is in the feed at %s, not about now (%s)", name, r.At, f.now())
		}
	}
	if _, ok := inFeed(feed, live.grantID, ""); ok {
		f.Errorf("a live grant is in the feed: %+v", feed)
	}
	if len(feed) != 3 {
		f.Errorf("feed has %d entries, want 3: %+v", len(feed), feed)
	}
}

func testFeedUnknownGrant(f *fixture) {
	f.ok(f.s.RevokeGrant(f.ctx, newGrantID()), "RevokeGrant of an unknown grant")
	if feed := f.feed(f.s, time.Time{}); len(feed) != 0 {
		f.Errorf("feed %+v, want it empty", feed)
	}
}

func testFeedTokenID(f *fixture) {
	is := f.issue(f.s)
	jti := "jti-" + randomHex(8)
	revokedBefore, err := f.s.TokenIDRevoked(f.ctx, is.grantID, jti)
	f.ok(err, "TokenIDRevoked")
	if revokedBefore {
		f.Fatal("TokenIDRevoked before RevokeTokenID")
	}
	f.ok(f.s.RevokeTokenID(f.ctx, is.grantID, jti, f.now().Add(shortTTL)), "RevokeTokenID")
	for _, c := range []struct {
		name         string
		grantID, jti string
		want         bool
	}{
		{"the revoked jti", is.grantID, jti, true},
		{"another jti of the grant", is.grantID, "jti-" + randomHex(8), false},
		{"the jti under another grant", newGrantID(), jti, false},
	} {
		got, err := f.s.TokenIDRevoked(f.ctx, c.grantID, c.jti)
		f.ok(err, "TokenIDRevoked")
		if got != c.want {
			f.Errorf("TokenIDRevoked of %s = %v, want %v", c.name, got, c.want)
		}
	}
	feed := f.feed(f.s, time.Time{})
	if _, ok := inFeed(feed, is.grantID, jti); !ok || len(feed) != 1 {
		f.Errorf("feed %+v, want the one jti", feed)
	}
	// Revoking one token leaves its grant alone.
	f.tokensLive(f.s, is.grantID, is.tokens, true)

	late := "jti-" + randomHex(8)
	f.ok(f.s.RevokeTokenID(f.ctx, is.grantID, late, f.now().Add(-time.Second)), "RevokeTokenID of an expired token")
	if _, ok := inFeed(f.feed(f.s, time.Time{}), is.grantID, late); ok {
		f.Error("an already expired token was recorded")
	}

	f.h.Wait(shortTTL + 100*time.Millisecond)
	got, err := f.s.TokenIDRevoked(f.ctx, is.grantID, jti)
	f.ok(err, "TokenIDRevoked after the token's expiry")
	if got {
		f.Error("the jti mark outlived the token")
	}
}

func testFeedSince(f *fixture) {
	first := f.issue(f.s)
	f.ok(f.s.RevokeGrant(f.ctx, first.grantID), "RevokeGrant")
	f.h.Wait(20 * time.Millisecond)
	second := f.issue(f.s)
	f.ok(f.s.RevokeTokenID(f.ctx, second.grantID, "jti-2", f.now().Add(longTTL)), "RevokeTokenID")

	all := f.feed(f.s, time.Time{})
	if len(all) != 2 || all[0].GrantID != first.grantID || all[1].TokenID != "jti-2" {
		f.Fatalf("feed %+v, want the grant then the jti", all)
	}
	if !all[0].At.Before(all[1].At) {
		f.Fatalf("entries recorded 20ms apart have At %s and %s", all[0].At, all[1].At)
	}
	since := f.feed(f.s, all[1].At)
	if len(since) != 1 || since[0].TokenID != "jti-2" {
		f.Errorf("Revocations(since the second entry) = %+v, want the second entry only", since)
	}
	if later := f.feed(f.s, all[1].At.Add(time.Millisecond)); len(later) != 0 {
		f.Errorf("Revocations(after the last entry) = %+v, want none", later)
	}
	if early := f.feed(f.s, all[0].At.Add(-time.Hour)); len(early) != 2 {
		f.Errorf("Revocations(an hour before) = %+v, want both", early)
	}
}

func testFeedRetention(f *fixture) {
	keep := f.h.RevocationRetention
	if keep <= 0 {
		f.Fatal("Harness.RevocationRetention is not set")
	}
	old := f.issue(f.s)
	f.ok(f.s.RevokeGrant(f.ctx, old.grantID), "RevokeGrant")
	f.h.Wait(keep / 2)
	if _, ok := inFeed(f.feed(f.s, time.Time{}), old.grantID, ""); !ok {
		f.Fatal("an entry was dropped before half the retention passed")
	}
	f.h.Wait(keep/2 + keep/4)
	recent := f.issue(f.s)
	f.ok(f.s.RevokeGrant(f.ctx, recent.grantID), "RevokeGrant")
	feed := f.feed(f.s, time.Time{})
	if _, ok := inFeed(feed, old.grantID, ""); ok {
		f.Errorf("an entry outlived the retention: %+v", feed)
	}
	if _, ok := inFeed(feed, recent.grantID, ""); !ok {
		f.Errorf("the recent entry is missing: %+v", feed)
	}
}

func testFeedTenants(f *fixture) {
	other := f.newStore("storetest-" + randomHex(6))
	is := f.issue(f.s)
	f.ok(f.s.RevokeGrant(f.ctx, is.grantID), "RevokeGrant")
	f.ok(f.s.RevokeTokenID(f.ctx, is.grantID, "jti-1", f.now().Add(longTTL)), "RevokeTokenID")
	if feed := f.feed(other, time.Time{}); len(feed) != 0 {
		f.Errorf("another tenant sees %+v", feed)
	}
	got, err := other.TokenIDRevoked(f.ctx, is.grantID, "jti-1")
	f.ok(err, "TokenIDRevoked in another tenant")
	if got {
		f.Error("another tenant sees the revoked jti")
	}
}

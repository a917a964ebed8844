package storetest

import (
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// agentTests cover the grants of agents without a browser: client_credentials
// (IssueGrant) and the device authorization grant (RFC 8628).
var agentTests = []struct {
	name string
	run  func(f *fixture)
}{
	{"IssueGrant stores a grant without a code, listed by client and not by user", testIssueGrant},
	{"IssueGrant refuses a grant ID that is taken or revoked", testIssueGrantTaken},
	{"A device authorization is found by its user code until the code is taken", testDeviceUserCode},
	{"A user code held by a live device authorization cannot be saved again", testDeviceUserCodeTaken},
	{"A taken user code given back finds its device again, once, until the device expires", testReturnUserCode},
	{"Polling a device: pending, slow_down when too soon, pending again after the interval", testDevicePollPacing},
	{"An approved device is redeemed once; a second redemption is reuse and revokes", testDeviceApproveRedeem},
	{"A denied device polls as denied", testDeviceDeny},
	{"Device authorizations and user codes expire", testDeviceExpiry},
	{"Device authorizations are per tenant", testDeviceTenant},
}

func testIssueGrant(f *fixture) {
	client := "agent-" + randomHex(4)
	id := newGrantID()
	g := f.grant(id, longTTL)
	g.UserID, g.ClientID = "", client
	p := accessOnly(f.pair(id, longTTL, 0))
	p.Access.UserID, p.Access.ClientID = "", client
	f.ok(f.s.IssueGrant(f.ctx, g, p), "IssueGrant")
	got, err := f.s.GetGrant(f.ctx, id)
	f.ok(err, "GetGrant")
	f.equal(got, g, "grant")
	f.tokensLive(f.s, id, p, true)
	f.listed(f.s, store.GrantFilter{ClientID: client}, g)
	f.listed(f.s, store.GrantFilter{UserID: ""}, g) // the zero filter: the tenant
	f.ok(f.s.RevokeGrant(f.ctx, id), "RevokeGrant")
	f.revoked(f.s, id, p)
	f.listed(f.s, store.GrantFilter{ClientID: client})
}

func testIssueGrantTaken(f *fixture) {
	is := f.issue(f.s)
	g := is.grant
	f.is(f.s.IssueGrant(f.ctx, g, f.pair(g.ID, longTTL, 0)), store.ErrAlreadyExists, "IssueGrant over a redeemed grant")
	f.ok(f.s.RevokeGrant(f.ctx, g.ID), "RevokeGrant")
	f.is(f.s.IssueGrant(f.ctx, g, f.pair(g.ID, longTTL, 0)), store.ErrGrantRevoked, "IssueGrant over a revoked grant")
	f.revoked(f.s, g.ID)
}

func (f *fixture) device(ttl time.Duration) (store.DeviceRef, string, store.DeviceAuthorization) {
	ref := store.DeviceRef{GrantID: newGrantID(), DeviceHash: randomHex(32)}
	d := store.DeviceAuthorization{
		ClientID: "cli-" + randomHex(4), Scope: "read write",
		Resource: []string{"https://mcp.example/"}, ExpiresAt: f.now().Add(ttl),
	}
	return ref, randomHex(32), d
}

func testDeviceUserCode(f *fixture) {
	ref, uc, d := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref, uc, d, 5*time.Second), "SaveDevice")
	gotRef, got, err := f.s.GetUserCode(f.ctx, uc)
	f.ok(err, "GetUserCode")
	f.equal(gotRef, ref, "ref")
	f.equal(got, d, "device authorization")
	gotRef, got, err = f.s.TakeUserCode(f.ctx, uc)
	f.ok(err, "TakeUserCode")
	f.equal(gotRef, ref, "ref taken")
	f.equal(got, d, "device authorization taken")
	_, _, err = f.s.TakeUserCode(f.ctx, uc)
	f.is(err, store.ErrNotFound, "TakeUserCode again")
	_, _, err = f.s.GetUserCode(f.ctx, uc)
	f.is(err, store.ErrNotFound, "GetUserCode after take")
	_, _, err = f.s.GetUserCode(f.ctx, randomHex(32))
	f.is(err, store.ErrNotFound, "GetUserCode of an unknown code")
	// The device itself still polls: taking the user code decides nothing.
	poll, err := f.s.PollDevice(f.ctx, ref)
	f.ok(err, "PollDevice")
	f.equal(poll.Status, store.DevicePending, "status after the user code is taken")
}

func testDeviceUserCodeTaken(f *fixture) {
	ref, uc, d := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref, uc, d, 5*time.Second), "SaveDevice")
	other, _, d2 := f.device(longTTL)
	f.is(f.s.SaveDevice(f.ctx, other, uc, d2, 5*time.Second), store.ErrAlreadyExists, "SaveDevice with a taken user code")
	gotRef, _, err := f.s.GetUserCode(f.ctx, uc)
	f.ok(err, "GetUserCode")
	f.equal(gotRef, ref, "the first device keeps its user code")
	_, err = f.s.PollDevice(f.ctx, other)
	f.is(err, store.ErrNotFound, "PollDevice of the refused device")
}

func testReturnUserCode(f *fixture) {
	ref, uc, d := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref, uc, d, 5*time.Second), "SaveDevice")
	_, _, err := f.s.TakeUserCode(f.ctx, uc)
	f.ok(err, "TakeUserCode")
	f.ok(f.s.ReturnUserCode(f.ctx, uc, ref, d.ExpiresAt), "ReturnUserCode")
	f.is(f.s.ReturnUserCode(f.ctx, uc, ref, d.ExpiresAt), store.ErrAlreadyExists, "ReturnUserCode of a live code")
	gotRef, got, err := f.s.TakeUserCode(f.ctx, uc)
	f.ok(err, "TakeUserCode after ReturnUserCode")
	f.equal(gotRef, ref, "ref")
	f.equal(got, d, "device authorization")
	poll, err := f.s.PollDevice(f.ctx, ref)
	f.ok(err, "PollDevice")
	f.equal(poll.Status, store.DevicePending, "the device still waits")

	// Given back past its device's expiry: nothing is stored.
	ref2, uc2, d2 := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref2, uc2, d2, 5*time.Second), "SaveDevice")
	_, _, err = f.s.TakeUserCode(f.ctx, uc2)
	f.ok(err, "TakeUserCode")
	f.ok(f.s.ReturnUserCode(f.ctx, uc2, ref2, f.now().Add(-time.Second)), "ReturnUserCode after the expiry")
	_, _, err = f.s.GetUserCode(f.ctx, uc2)
	f.is(err, store.ErrNotFound, "GetUserCode of a code given back too late")
}

func testDevicePollPacing(f *fixture) {
	const interval = 200 * time.Millisecond
	ref, uc, d := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref, uc, d, interval), "SaveDevice")
	poll, err := f.s.PollDevice(f.ctx, ref)
	f.ok(err, "first poll")
	f.equal(poll, store.DevicePoll{Status: store.DevicePending, Interval: interval, Device: d}, "first poll")
	poll, err = f.s.PollDevice(f.ctx, ref)
	f.ok(err, "second poll")
	f.equal(poll.Status, store.DeviceSlowDown, "a poll at once")
	f.equal(poll.Interval, interval+store.DeviceSlowDownStep, "interval after slow_down")

	ref2, uc2, d2 := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref2, uc2, d2, interval), "SaveDevice")
	_, err = f.s.PollDevice(f.ctx, ref2)
	f.ok(err, "first poll")
	f.h.Wait(interval + 50*time.Millisecond)
	poll, err = f.s.PollDevice(f.ctx, ref2)
	f.ok(err, "poll after the interval")
	f.equal(poll.Status, store.DevicePending, "a poll after the interval")
	f.equal(poll.Interval, interval, "interval kept")

	_, err = f.s.PollDevice(f.ctx, store.DeviceRef{GrantID: newGrantID(), DeviceHash: randomHex(32)})
	f.is(err, store.ErrNotFound, "PollDevice of an unknown device")
}

func testDeviceApproveRedeem(f *fixture) {
	ref, uc, d := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref, uc, d, time.Nanosecond), "SaveDevice")
	_, _, err := f.s.TakeUserCode(f.ctx, uc)
	f.ok(err, "TakeUserCode")
	// The approval is a code under the device code's hash, as the callback saves it.
	c := f.code(longTTL)
	c.ClientID, c.RedirectURI, c.CodeChallenge, c.CodeChallengeMethod = d.ClientID, "", "", ""
	f.ok(store.SaveLogin(f.ctx, f.s, store.Login{UserID: c.UserID, Upstream: store.UpstreamToken{Ciphertext: []byte("x"), UpdatedAt: f.now()},
		UpstreamTTL: longTTL, GrantID: ref.GrantID, CodeHash: ref.DeviceHash, Code: c}), "SaveLogin")
	poll, err := f.s.PollDevice(f.ctx, ref)
	f.ok(err, "PollDevice")
	f.equal(poll.Status, store.DeviceApproved, "status after approval")
	got, err := f.s.PeekCode(f.ctx, ref.GrantID, ref.DeviceHash)
	f.ok(err, "PeekCode")
	f.equal(got, c, "approval")
	g := f.grant(ref.GrantID, longTTL)
	p := f.pair(ref.GrantID, longTTL, longTTL)
	f.ok(f.s.RedeemCode(f.ctx, ref.GrantID, ref.DeviceHash, g, p), "RedeemCode")
	f.tokensLive(f.s, ref.GrantID, p, true)
	f.is(f.s.RedeemCode(f.ctx, ref.GrantID, ref.DeviceHash, g, f.pair(ref.GrantID, longTTL, longTTL)), store.ErrCodeReused, "second redemption")
	f.revoked(f.s, ref.GrantID, p)
}

func testDeviceDeny(f *fixture) {
	ref, uc, d := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref, uc, d, time.Nanosecond), "SaveDevice")
	f.ok(f.s.DenyDevice(f.ctx, ref), "DenyDevice")
	f.ok(f.s.DenyDevice(f.ctx, ref), "DenyDevice again")
	poll, err := f.s.PollDevice(f.ctx, ref)
	f.ok(err, "PollDevice")
	f.equal(poll.Status, store.DeviceDenied, "status after denial")
	f.is(f.s.DenyDevice(f.ctx, store.DeviceRef{GrantID: newGrantID(), DeviceHash: randomHex(32)}), store.ErrNotFound, "DenyDevice of an unknown device")
}

func testDeviceExpiry(f *fixture) {
	ref, uc, d := f.device(shortTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref, uc, d, time.Nanosecond), "SaveDevice")
	_, err := f.s.PollDevice(f.ctx, ref)
	f.ok(err, "PollDevice before expiry")
	f.h.Wait(shortTTL + 100*time.Millisecond)
	_, err = f.s.PollDevice(f.ctx, ref)
	f.is(err, store.ErrNotFound, "PollDevice after expiry")
	_, _, err = f.s.GetUserCode(f.ctx, uc)
	f.is(err, store.ErrNotFound, "GetUserCode after expiry")
	f.is(f.s.DenyDevice(f.ctx, ref), store.ErrNotFound, "DenyDevice after expiry")
	// The user code is free again.
	ref2, _, d2 := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref2, uc, d2, time.Second), "SaveDevice with the expired user code")
	// A record already expired is not stored.
	ref3, uc3, d3 := f.device(-time.Second)
	f.ok(f.s.SaveDevice(f.ctx, ref3, uc3, d3, time.Second), "SaveDevice of an expired record")
	_, _, err = f.s.GetUserCode(f.ctx, uc3)
	f.is(err, store.ErrNotFound, "GetUserCode of an expired record")
}

func testDeviceTenant(f *fixture) {
	other := f.newStore(f.prefix() + "-other")
	ref, uc, d := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref, uc, d, time.Second), "SaveDevice")
	_, _, err := other.GetUserCode(f.ctx, uc)
	f.is(err, store.ErrNotFound, "GetUserCode in another tenant")
	_, err = other.PollDevice(f.ctx, ref)
	f.is(err, store.ErrNotFound, "PollDevice in another tenant")
	f.ok(other.SaveDevice(f.ctx, ref, uc, d, time.Second), "the same user code in another tenant")
}

// agentConcurrencyTests race the single-use steps of the device flow.
var agentConcurrencyTests = []struct {
	name string
	run  func(f *fixture)
}{
	{"Concurrent takes of one user code: exactly one succeeds", testConcurrentTakeUserCode},
	{"Concurrent saves of one user code: exactly one succeeds", testConcurrentSaveUserCode},
}

func testConcurrentTakeUserCode(f *fixture) {
	ref, uc, d := f.device(longTTL)
	f.ok(f.s.SaveDevice(f.ctx, ref, uc, d, time.Second), "SaveDevice")
	refs := make([]store.DeviceRef, racers)
	errs := race(func(i int) (err error) {
		refs[i], _, err = f.s.TakeUserCode(f.ctx, uc)
		return err
	})
	winner := f.oneWinner(errs, store.ErrNotFound)
	f.equal(refs[winner], ref, "the winner's device")
}

func testConcurrentSaveUserCode(f *fixture) {
	uc := randomHex(32)
	refs := make([]store.DeviceRef, racers)
	errs := race(func(i int) error {
		ref, _, d := f.device(longTTL)
		refs[i] = ref
		return f.s.SaveDevice(f.ctx, ref, uc, d, time.Second)
	})
	winner := f.oneWinner(errs, store.ErrAlreadyExists)
	got, _, err := f.s.GetUserCode(f.ctx, uc)
	f.ok(err, "GetUserCode")
	f.equal(got, refs[winner], "the user code names the winner's device")
}

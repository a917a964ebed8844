package storetest

import (
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// The approval-mode records (store.ClientApprovals).

func (f *fixture) approval(id string, state store.ApprovalStatus, requested time.Time, ttl time.Duration) store.ClientApproval {
	return store.ClientApproval{
		ClientID:     id,
		Status:       state,
		Kind:         "metadata-document",
		Name:         "Client " + id,
		RedirectURIs: []string{"http://127.0.0.1/cb"},
		RequestedAt:  requested,
		ExpiresAt:    f.now().Add(ttl),
	}
}

func testApprovalRequestOnce(f *fixture) {
	id := "https://app.example/" + randomHex(4) + "/client.json"
	first := f.approval(id, store.ApprovalPending, f.now(), longTTL)
	got, err := f.s.RequestApproval(f.ctx, first)
	f.ok(err, "RequestApproval")
	f.equal(got, first, "the stored request")

	second := first
	second.Name = "Another name"
	second.RequestedAt = first.RequestedAt.Add(time.Minute)
	got, err = f.s.RequestApproval(f.ctx, second)
	f.ok(err, "second RequestApproval")
	f.equal(got, first, "a second request returns the first record")
	got, err = f.s.GetApproval(f.ctx, id)
	f.ok(err, "GetApproval")
	f.equal(got, first, "the record after a second request")

	_, err = f.s.GetApproval(f.ctx, "mcp_client_unknown")
	f.is(err, store.ErrNotFound, "GetApproval of an unknown client")
}

func testApprovalDecide(f *fixture) {
	id := "mcp_client_" + randomHex(4)
	pending := f.approval(id, store.ApprovalPending, f.now(), longTTL)
	_, err := f.s.RequestApproval(f.ctx, pending)
	f.ok(err, "RequestApproval")
	approved := pending
	approved.Status, approved.DecidedAt, approved.DecidedBy = store.ApprovalApproved, f.now(), "admin API"
	f.ok(f.s.SetApproval(f.ctx, approved), "SetApproval")
	got, err := f.s.GetApproval(f.ctx, id)
	f.ok(err, "GetApproval")
	f.equal(got, approved, "the decided record")
	got, err = f.s.RequestApproval(f.ctx, pending)
	f.ok(err, "RequestApproval after the decision")
	f.equal(got, approved, "a request does not undo a decision")

	// A decision may come before any request (an administrator approves ahead).
	ahead := f.approval("https://ahead.example/"+randomHex(4), store.ApprovalDenied, f.now(), longTTL)
	f.ok(f.s.SetApproval(f.ctx, ahead), "SetApproval without a request")
	got, err = f.s.GetApproval(f.ctx, ahead.ClientID)
	f.ok(err, "GetApproval")
	f.equal(got, ahead, "a decision made ahead")

	f.ok(f.s.DeleteApproval(f.ctx, id), "DeleteApproval")
	_, err = f.s.GetApproval(f.ctx, id)
	f.is(err, store.ErrNotFound, "GetApproval after delete")
	f.ok(f.s.DeleteApproval(f.ctx, id), "second DeleteApproval")
}

func testApprovalList(f *fixture) {
	t0 := f.now().Add(-time.Hour)
	a := f.approval("b-"+randomHex(4), store.ApprovalPending, t0.Add(2*time.Minute), longTTL)
	b := f.approval("a-"+randomHex(4), store.ApprovalPending, t0, longTTL)
	c := f.approval("c-"+randomHex(4), store.ApprovalApproved, t0.Add(time.Minute), longTTL)
	for _, x := range []store.ClientApproval{a, b} {
		_, err := f.s.RequestApproval(f.ctx, x)
		f.ok(err, "RequestApproval")
	}
	f.ok(f.s.SetApproval(f.ctx, c), "SetApproval")

	got, err := f.s.ListApprovals(f.ctx, store.ApprovalPending)
	f.ok(err, "ListApprovals pending")
	f.equal(got, []store.ClientApproval{b, a}, "pending approvals, oldest request first")
	got, err = f.s.ListApprovals(f.ctx, "")
	f.ok(err, "ListApprovals")
	f.equal(got, []store.ClientApproval{b, c, a}, "every approval")
	got, err = f.s.ListApprovals(f.ctx, store.ApprovalDenied)
	f.ok(err, "ListApprovals denied")
	f.equal(got, []store.ClientApproval{}, "no denied approvals")

	other := f.newStore(f.prefix() + "-other")
	got, err = other.ListApprovals(f.ctx, "")
	f.ok(err, "ListApprovals of another tenant")
	f.equal(got, []store.ClientApproval{}, "another tenant's approvals")
	_, err = other.GetApproval(f.ctx, a.ClientID)
	f.is(err, store.ErrNotFound, "GetApproval of another tenant's client")
}

func testApprovalExpiry(f *fixture) {
	short := f.approval("short-"+randomHex(4), store.ApprovalPending, f.now(), shortTTL)
	long := f.approval("long-"+randomHex(4), store.ApprovalApproved, f.now(), longTTL)
	_, err := f.s.RequestApproval(f.ctx, short)
	f.ok(err, "RequestApproval")
	f.ok(f.s.SetApproval(f.ctx, long), "SetApproval")
	dead := f.approval("dead-"+randomHex(4), store.ApprovalPending, f.now(), -time.Second)
	_, err = f.s.RequestApproval(f.ctx, dead)
	f.ok(err, "RequestApproval of a dead record")
	_, err = f.s.GetApproval(f.ctx, dead.ClientID)
	f.is(err, store.ErrNotFound, "GetApproval of a record stored dead")

	f.h.Wait(shortTTL + 100*time.Millisecond)
	_, err = f.s.GetApproval(f.ctx, short.ClientID)
	f.is(err, store.ErrNotFound, "GetApproval after expiry")
	got, err := f.s.ListApprovals(f.ctx, "")
	f.ok(err, "ListApprovals")
	f.equal(got, []store.ClientApproval{long}, "only the live approval is listed")

	// An expired request is a new request.
	again := f.approval(short.ClientID, store.ApprovalPending, f.now(), longTTL)
	got1, err := f.s.RequestApproval(f.ctx, again)
	f.ok(err, "RequestApproval after expiry")
	f.equal(got1, again, "a new request after expiry")
}

func testConcurrentApprovalRequest(f *fixture) {
	id := "https://race.example/" + randomHex(4)
	got := make([]store.ClientApproval, racers)
	errs := race(func(i int) error {
		a := f.approval(id, store.ApprovalPending, f.now().Add(time.Duration(i)*time.Second), longTTL)
		var err error
		got[i], err = f.s.RequestApproval(f.ctx, a)
		return err
	})
	for i, err := range errs {
		f.ok(err, "RequestApproval")
		f.equal(got[i], got[0], "every racer gets the one stored record")
	}
	stored, err := f.s.GetApproval(f.ctx, id)
	f.ok(err, "GetApproval")
	f.equal(stored, got[0], "the stored record")
	list, err := f.s.ListApprovals(f.ctx, store.ApprovalPending)
	f.ok(err, "ListApprovals")
	f.equal(len(list), 1, "one pending approval")
}

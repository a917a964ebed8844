package memory

import (
	"context"
	"slices"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// deviceKey qualifies a device authorization with the tenant and its grant.
func (s *Store) deviceKey(ref store.DeviceRef) string {
	return s.key("device\x00" + ref.GrantID + "\x00" + ref.DeviceHash)
}

// SaveDevice implements store.DeviceAuthorizations.
func (s *Store) SaveDevice(_ context.Context, ref store.DeviceRef, userCodeHash string, d store.DeviceAuthorization, interval time.Duration) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	uk := s.key(userCodeHash)
	if db.userCodeLive(uk, now) {
		return store.ErrAlreadyExists
	}
	if !live(d.ExpiresAt, now) {
		return nil // dead on arrival, as every record
	}
	d.Resource = slices.Clone(d.Resource)
	db.devices[s.deviceKey(ref)] = &deviceEntry{d: d, interval: interval}
	db.userCodes[uk] = userCodeEntry{ref: ref, expiresAt: d.ExpiresAt}
	return nil
}

// userCodeLive reports whether a live device authorization holds the user code uk.
// The caller holds db.mu.
func (db *database) userCodeLive(uk string, now time.Time) bool {
	u, ok := db.userCodes[uk]
	return ok && live(u.expiresAt, now)
}

// GetUserCode implements store.DeviceAuthorizations.
func (s *Store) GetUserCode(_ context.Context, userCodeHash string) (store.DeviceRef, store.DeviceAuthorization, error) {
	return s.userCode(userCodeHash, false)
}

// TakeUserCode implements store.DeviceAuthorizations.
func (s *Store) TakeUserCode(_ context.Context, userCodeHash string) (store.DeviceRef, store.DeviceAuthorization, error) {
	return s.userCode(userCodeHash, true)
}

func (s *Store) userCode(userCodeHash string, take bool) (store.DeviceRef, store.DeviceAuthorization, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	uk := s.key(userCodeHash)
	u, ok := db.userCodes[uk]
	if !ok || !live(u.expiresAt, now) {
		return store.DeviceRef{}, store.DeviceAuthorization{}, store.ErrNotFound
	}
	e := db.devices[s.deviceKey(u.ref)]
	if e == nil || !live(e.d.ExpiresAt, now) {
		return store.DeviceRef{}, store.DeviceAuthorization{}, store.ErrNotFound
	}
	if take {
		delete(db.userCodes, uk)
	}
	d := e.d
	d.Resource = slices.Clone(d.Resource)
	return u.ref, d, nil
}

// ReturnUserCode implements store.DeviceAuthorizations.
func (s *Store) ReturnUserCode(_ context.Context, userCodeHash string, ref store.DeviceRef, expiresAt time.Time) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	uk := s.key(userCodeHash)
	if db.userCodeLive(uk, now) {
		return store.ErrAlreadyExists
	}
	if live(expiresAt, now) {
		db.userCodes[uk] = userCodeEntry{ref: ref, expiresAt: expiresAt}
	}
	return nil
}

// DenyDevice implements store.DeviceAuthorizations.
func (s *Store) DenyDevice(_ context.Context, ref store.DeviceRef) error {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	e := db.devices[s.deviceKey(ref)]
	if e == nil || !live(e.d.ExpiresAt, db.now()) {
		return store.ErrNotFound
	}
	e.denied = true
	return nil
}

// PollDevice implements store.DeviceAuthorizations.
func (s *Store) PollDevice(_ context.Context, ref store.DeviceRef) (store.DevicePoll, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := db.now()
	e := db.devices[s.deviceKey(ref)]
	if e == nil || !live(e.d.ExpiresAt, now) {
		return store.DevicePoll{}, store.ErrNotFound
	}
	poll := store.DevicePoll{Status: store.DevicePending, Device: e.d}
	poll.Device.Resource = slices.Clone(e.d.Resource)
	switch {
	case e.denied:
		poll.Status = store.DeviceDenied
	case s.codeLocked(ref.GrantID, ref.DeviceHash, now) != nil:
		poll.Status = store.DeviceApproved
	case !e.lastPoll.IsZero() && now.Sub(e.lastPoll) < e.interval:
		e.interval += store.DeviceSlowDownStep
		poll.Status = store.DeviceSlowDown
	}
	e.lastPoll = now
	poll.Interval = e.interval
	return poll, nil
}

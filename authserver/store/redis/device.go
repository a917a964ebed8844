package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// IssueGrant stores a grant and its first tokens without a code: one pipeline of the
// grant's script and the index writes, as RedeemCode.
func (s *Store) IssueGrant(ctx context.Context, gr store.Grant, tokens store.TokenPair) error {
	if err := checkGrantID(gr.ID); err != nil {
		return err
	}
	g := s.k.grant(gr.ID)
	keys := []string{g.set(), g.revoked(), g.grant(), g.access(tokens.AccessHash)}
	recs, err := encodeAll("issue grant", gr, tokens.Access)
	if err != nil {
		return err
	}
	args := []any{recs[0], ttl(gr.ExpiresAt), recs[1], ttl(tokens.Access.ExpiresAt)}
	if tokens.RefreshHash != "" {
		rt, err := encodeAll("issue grant", tokens.Refresh)
		if err != nil {
			return err
		}
		keys = append(keys, g.refresh(tokens.RefreshHash))
		args = append(args, rt[0], ttl(tokens.Refresh.ExpiresAt))
	}
	return s.writeAndIndex(ctx, "issue grant", issueGrantScript, issueIndexedScript, gr, tokens.ClientUse, keys, args)
}

func deviceExpiry(d *store.DeviceAuthorization) time.Time { return d.ExpiresAt }

// SaveDevice claims the user code (SET NX), then writes the device authorization and
// its polling state with one script on the grant's slot: two round trips.
func (s *Store) SaveDevice(ctx context.Context, ref store.DeviceRef, userCodeHash string, d store.DeviceAuthorization, interval time.Duration) error {
	if err := checkGrantID(ref.GrantID); err != nil {
		return err
	}
	px := ttl(d.ExpiresAt)
	if px <= 0 {
		return nil
	}
	recs, err := encodeAll("save device", ref, d)
	if err != nil {
		return err
	}
	if err := s.claimUserCode(ctx, "save user code", userCodeHash, recs[0], px); err != nil {
		return err
	}
	g := s.k.grant(ref.GrantID)
	return s.runStatus(ctx, "save device", saveDeviceScript,
		[]string{g.device(ref.DeviceHash), g.devicePoll(ref.DeviceHash)}, recs[1], px, interval.Milliseconds())
}

// GetUserCode reads the user code and then its device authorization.
func (s *Store) GetUserCode(ctx context.Context, userCodeHash string) (store.DeviceRef, store.DeviceAuthorization, error) {
	return s.userCodeDevice(ctx, s.rdb.Get(ctx, s.k.userCode(userCodeHash)))
}

// TakeUserCode spends the user code with GETDEL, then reads its device authorization.
func (s *Store) TakeUserCode(ctx context.Context, userCodeHash string) (store.DeviceRef, store.DeviceAuthorization, error) {
	return s.userCodeDevice(ctx, s.rdb.GetDel(ctx, s.k.userCode(userCodeHash)))
}

func (s *Store) userCodeDevice(ctx context.Context, cmd *goredis.StringCmd) (store.DeviceRef, store.DeviceAuthorization, error) {
	ref, err := decodeReply[store.DeviceRef]("get user code", cmd, nil, nil)
	if err != nil {
		return ref, store.DeviceAuthorization{}, err
	}
	d, err := decodeReply("get device", s.rdb.Get(ctx, s.k.grant(ref.GrantID).device(ref.DeviceHash)), nil, deviceExpiry)
	return ref, d, err
}

// ReturnUserCode writes the user code back (NX) for what is left of its device
// authorization's life.
func (s *Store) ReturnUserCode(ctx context.Context, userCodeHash string, ref store.DeviceRef, expiresAt time.Time) error {
	px := ttl(expiresAt)
	if px <= 0 {
		return nil
	}
	recs, err := encodeAll("return user code", ref)
	if err != nil {
		return err
	}
	return s.claimUserCode(ctx, "return user code", userCodeHash, recs[0], px)
}

// claimUserCode points the user code at a device (its encoded ref) for px
// milliseconds, unless it is live already (ErrAlreadyExists): SET NX.
func (s *Store) claimUserCode(ctx context.Context, op, userCodeHash, ref string, px int64) error {
	err := s.rdb.SetArgs(ctx, s.k.userCode(userCodeHash), ref,
		goredis.SetArgs{Mode: "NX", TTL: time.Duration(px) * time.Millisecond}).Err()
	switch {
	case errors.Is(err, goredis.Nil):
		return store.ErrAlreadyExists
	case err != nil:
		return unavailable(op, err)
	}
	return nil
}

// DenyDevice marks the device authorization refused: one script.
func (s *Store) DenyDevice(ctx context.Context, ref store.DeviceRef) error {
	g := s.k.grant(ref.GrantID)
	return s.runStatus(ctx, "deny device", denyDeviceScript, []string{g.device(ref.DeviceHash), g.devicePoll(ref.DeviceHash)})
}

var pollStatuses = map[string]store.DevicePollStatus{
	"PENDING": store.DevicePending, "SLOW_DOWN": store.DeviceSlowDown,
	"APPROVED": store.DeviceApproved, "DENIED": store.DeviceDenied,
}

// PollDevice is one script on the grant's slot.
func (s *Store) PollDevice(ctx context.Context, ref store.DeviceRef) (store.DevicePoll, error) {
	var poll store.DevicePoll
	if err := checkGrantID(ref.GrantID); err != nil {
		return poll, err
	}
	g := s.k.grant(ref.GrantID)
	keys := []string{g.device(ref.DeviceHash), g.devicePoll(ref.DeviceHash), g.code(ref.DeviceHash)}
	reply, err := pollDeviceScript.Run(ctx, s.rdb, keys, ms(time.Now()), store.DeviceSlowDownStep.Milliseconds()).StringSlice()
	if err != nil {
		return poll, unavailable("poll device", err)
	}
	if len(reply) == 1 && reply[0] == "NOTFOUND" {
		return poll, store.ErrNotFound
	}
	if len(reply) != 3 {
		return poll, fmt.Errorf("redis store: poll device: unexpected reply %q", reply)
	}
	status, ok := pollStatuses[reply[0]]
	if !ok {
		return poll, fmt.Errorf("redis store: poll device: unexpected status %q", reply[0])
	}
	if err := decode(reply[1], &poll.Device); err != nil {
		return poll, fmt.Errorf("redis store: poll device: decode: %w", err)
	}
	if !live(poll.Device.ExpiresAt) {
		return store.DevicePoll{}, store.ErrNotFound
	}
	iv, err := strconv.ParseInt(reply[2], 10, 64)
	if err != nil {
		return poll, fmt.Errorf("redis store: poll device: interval %q", reply[2])
	}
	poll.Status, poll.Interval = status, time.Duration(iv)*time.Millisecond
	return poll, nil
}

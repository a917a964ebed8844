package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// Approval records sit beside the client registrations, under the tenant's hash tag
// {prefix}, with a sorted-set index scored by expiry: a script can write a record and
// its index entry together, and a list is one ZRANGEBYSCORE and one MGET on one slot,
// also on a Cluster.

func approvalExpiry(a *store.ClientApproval) time.Time { return a.ExpiresAt }

// RequestApproval stores a unless a live record exists: one script.
func (s *Store) RequestApproval(ctx context.Context, a store.ClientApproval) (store.ClientApproval, error) {
	const op = "request approval"
	rec, err := encodeAll(op, a)
	if err != nil {
		return store.ClientApproval{}, err
	}
	raw, err := requestApprovalScript.Run(ctx, s.rdb, []string{s.k.approval(a.ClientID), s.k.approvals()},
		rec[0], ttl(a.ExpiresAt), a.ClientID, ms(a.ExpiresAt), ms(time.Now())).Text()
	if err != nil {
		return store.ClientApproval{}, unavailable(op, err)
	}
	var got store.ClientApproval
	if err := decode(raw, &got); err != nil {
		return got, err
	}
	return got, nil
}

// GetApproval reads the client's record: one GET.
func (s *Store) GetApproval(ctx context.Context, clientID string) (store.ClientApproval, error) {
	return decodeReply("get approval", s.rdb.Get(ctx, s.k.approval(clientID)), nil, approvalExpiry)
}

// SetApproval replaces the client's record: one script.
func (s *Store) SetApproval(ctx context.Context, a store.ClientApproval) error {
	const op = "set approval"
	rec, err := encodeAll(op, a)
	if err != nil {
		return err
	}
	return s.runStatus(ctx, op, setApprovalScript, []string{s.k.approval(a.ClientID), s.k.approvals()},
		rec[0], ttl(a.ExpiresAt), a.ClientID, ms(a.ExpiresAt), ms(time.Now()))
}

// ListApprovals reads the live index entries and their records.
func (s *Store) ListApprovals(ctx context.Context, status store.ApprovalStatus) ([]store.ClientApproval, error) {
	const op = "list approvals"
	ids, err := s.rdb.ZRangeByScore(ctx, s.k.approvals(), &goredis.ZRangeBy{Min: "(" + ms(time.Now()), Max: "+inf"}).Result()
	if err != nil {
		return nil, unavailable(op, err)
	}
	out := []store.ClientApproval{}
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.approval(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, unavailable(op, err)
	}
	for _, v := range vals {
		raw, ok := v.(string)
		if !ok {
			continue // deleted or expired since the index was read
		}
		var a store.ClientApproval
		if err := decode(raw, &a); err != nil || !live(a.ExpiresAt) || (status != "" && a.Status != status) {
			continue
		}
		out = append(out, a)
	}
	store.SortApprovals(out)
	return out, nil
}

// DeleteApproval removes the record and its index entry.
func (s *Store) DeleteApproval(ctx context.Context, clientID string) error {
	return s.runStatus(ctx, "delete approval", deleteClientScript, []string{s.k.approval(clientID), s.k.approvals()}, clientID)
}

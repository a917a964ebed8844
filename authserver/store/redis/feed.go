package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// feedMember is a feed entry's member: JSON [grantID, jti], jti empty for a grant, so
// that no grant ID or jti can be read as the other.
func feedMember(grantID, jti string) string {
	b, _ := json.Marshal([2]string{grantID, jti}) // strings always marshal
	return string(b)
}

// record adds a feed entry: one script on the feed's own key. The revocation it records
// has already happened, and a caller's retry may not find the grant again (its keys are
// gone), so a failed write is tried twice more, briefly, before the error is returned.
func (s *Store) record(ctx context.Context, grantID, jti string) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
			}
		}
		if err = s.runStatus(ctx, "record revocation", feedAddScript, []string{s.k.feed()},
			feedMember(grantID, jti), s.retention.Milliseconds()); err == nil {
			return nil
		}
	}
	return err
}

// recordGrant records the grant revocation a script reported alongside err, the
// script's answer (ErrCodeReused, ErrRefreshReused), keeping it inspectable.
func (s *Store) recordGrant(ctx context.Context, grantID string, err error) error {
	if ferr := s.record(ctx, grantID, ""); ferr != nil {
		return fmt.Errorf("%w (and %w)", err, ferr)
	}
	return err
}

// Revocations reads the feed from since on: one ZRANGEBYSCORE.
func (s *Store) Revocations(ctx context.Context, since time.Time) ([]store.Revocation, error) {
	min := "-inf"
	if !since.IsZero() {
		min = strconv.FormatInt(since.UnixMilli(), 10)
	}
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.k.feed(), &goredis.ZRangeBy{Min: min, Max: "+inf"}).Result()
	if err != nil {
		return nil, unavailable("read revocations", err)
	}
	out := make([]store.Revocation, 0, len(zs))
	for _, z := range zs {
		m, _ := z.Member.(string)
		var ids [2]string
		if err := json.Unmarshal([]byte(m), &ids); err != nil {
			return nil, fmt.Errorf("redis store: read revocations: member %q: %w", m, err)
		}
		out = append(out, store.Revocation{GrantID: ids[0], TokenID: ids[1], At: time.UnixMilli(int64(z.Score)).UTC()})
	}
	return out, nil
}

// RevokeTokenID marks the jti and records it in the feed in one pipeline: one round
// trip (on a Cluster, one per node, in parallel).
func (s *Store) RevokeTokenID(ctx context.Context, grantID, jti string, until time.Time) error {
	if err := checkGrantID(grantID); err != nil {
		return err
	}
	px := ttl(until)
	if px <= 0 {
		return nil
	}
	keys := []string{s.k.feed()}
	args := []any{feedMember(grantID, jti), s.retention.Milliseconds()}
	pipe := s.rdb.Pipeline()
	mark := pipe.Set(ctx, s.k.grant(grantID).jti(jti), "1", time.Duration(px)*time.Millisecond)
	add := feedAddScript.EvalSha(ctx, pipe, keys, args...)
	_, _ = pipe.Exec(ctx) // each command carries its own answer or error
	if err := mark.Err(); err != nil {
		return unavailable("revoke token id", err)
	}
	if err := add.Err(); err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		return s.runStatus(ctx, "record revocation", feedAddScript, keys, args...)
	} else if err != nil {
		return unavailable("record revocation", err)
	}
	return nil
}

// TokenIDRevoked reads the jti's mark: one EXISTS.
func (s *Store) TokenIDRevoked(ctx context.Context, grantID, jti string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.k.grant(grantID).jti(jti)).Result()
	if err != nil {
		return false, unavailable("token id revoked", err)
	}
	return n == 1, nil
}

// revocationErr reports whether err is a script's answer that it revoked the grant.
func revocationErr(err error) bool {
	return errors.Is(err, store.ErrCodeReused) || errors.Is(err, store.ErrRefreshReused)
}

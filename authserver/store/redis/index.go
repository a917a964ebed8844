package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// listBatch bounds how many grants one pipeline of ListGrants reads.
const listBatch = 500

// redeemAndIndex runs the redemption script and lists the grant in its user's, its
// client's and the tenant's index, with the client's use when there is one. Outside a
// Cluster that is one script (chain): the redemption first, and the rest only when it
// wrote; concurrent requests' commands share its round trip (autopipeline.go).
//
// On a Cluster, where the indexes lie in other slots than the grant, it is one
// pipeline (one round trip per node, in parallel) with a script per index, the index
// writes ahead. When the redemption succeeded but an index write failed (the index's
// node alone down), the error is returned all the same: a grant that revocation by
// user or client could miss is never handed out. Its tokens reach nobody, and the
// client's retry of the code is a replay that revokes it; the user logs in again.
// A script Redis has lost (a restart, SCRIPT FLUSH) is run again on its own.
//
// IssueGrant runs the same way with issueGrantScript (op names it in errors). A grant
// without a user (client_credentials) is not listed under a user.
func (s *Store) redeemAndIndex(ctx context.Context, gr store.Grant, use *store.ClientUse, keys []string, args []any) error {
	return s.writeAndIndex(ctx, "redeem code", redeemCodeScript, redeemIndexedScript, gr, use, keys, args)
}

// writeAndIndex runs sc, or chained (sc, indexGrantScript and touchClientScript as
// one script) outside a Cluster; see redeemAndIndex.
func (s *Store) writeAndIndex(ctx context.Context, op string, sc, chained *goredis.Script, gr store.Grant, use *store.ClientUse, keys []string, args []any) error {
	now, exp, px := ms(time.Now()), ms(gr.ExpiresAt), ttl(gr.ExpiresAt)
	idx := []string{s.k.clientGrants(gr.ClientID), s.k.grantIndex()}
	if gr.UserID != "" {
		idx = append(idx, s.k.userGrants(gr.UserID))
	}
	indexArgs := []any{gr.ID, exp, px, now}
	touch := s.touchPart(use)
	if !s.cluster() {
		k, a := chainArgs(chainPart{keys, args}, chainPart{idx, indexArgs}, touch)
		return s.runStatus(ctx, op, chained, k, a...)
	}
	pipe := s.rdb.Pipeline()
	indexed := make([]*goredis.Cmd, len(idx))
	for i := range idx {
		indexed[i] = indexGrantScript.EvalSha(ctx, pipe, idx[i:i+1], indexArgs...)
	}
	touched := s.pipeTouch(ctx, pipe, touch)
	redeem := sc.EvalSha(ctx, pipe, keys, args...)
	_, _ = pipe.Exec(ctx) // each command carries its own answer or error
	touched()
	var err error
	if rerr := redeem.Err(); rerr != nil && goredis.HasErrorPrefix(rerr, "NOSCRIPT") {
		err = s.runStatus(ctx, op, sc, keys, args...)
	} else if status, rerr := redeem.Text(); rerr != nil {
		err = unavailable(op, rerr)
	} else if serr, ok := statusErrors[status]; !ok {
		err = fmt.Errorf("redis store: %s: unexpected script status %q", op, status)
	} else {
		err = serr
	}
	if err != nil {
		return err // an index entry without its grant is dropped by ListGrants
	}
	for i, c := range indexed {
		ierr := c.Err()
		if ierr != nil && goredis.HasErrorPrefix(ierr, "NOSCRIPT") {
			if err := s.runStatus(ctx, "index grant", indexGrantScript, idx[i:i+1], indexArgs...); err != nil {
				return err
			}
		} else if ierr != nil {
			return unavailable("index grant", ierr)
		}
	}
	return nil
}

// ListGrants reads the index that f selects (the user's when UserID is set, else the
// client's, else the tenant's), then the grants it names, in pipelines of listBatch.
// Entries whose grant is gone for good are removed on the way.
func (s *Store) ListGrants(ctx context.Context, f store.GrantFilter) ([]store.Grant, error) {
	idx := s.k.grantIndex()
	switch {
	case f.UserID != "":
		idx = s.k.userGrants(f.UserID)
	case f.ClientID != "":
		idx = s.k.clientGrants(f.ClientID)
	}
	now := ms(time.Now())
	pipe := s.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, idx, "-inf", now)
	members := pipe.ZRangeByScore(ctx, idx, &goredis.ZRangeBy{Min: "(" + now, Max: "+inf"})
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("list grants", err)
	}
	ids := members.Val()
	var out []store.Grant
	var gone []any
	for start := 0; start < len(ids); start += listBatch {
		batch := ids[start:min(start+listBatch, len(ids))]
		pipe := s.rdb.Pipeline()
		grants := make([]*goredis.StringCmd, len(batch))
		sets := make([]*goredis.IntCmd, len(batch))
		for i, id := range batch {
			g := s.k.grant(id)
			grants[i] = pipe.Get(ctx, g.grant())
			sets[i] = pipe.Exists(ctx, g.set())
		}
		_, _ = pipe.Exec(ctx) // each command carries its own answer or error
		for i, id := range batch {
			gr, err := decodeReply("list grants", grants[i], nil, grantExpiry)
			switch {
			case err == nil:
				if f.ClientID == "" || gr.ClientID == f.ClientID {
					out = append(out, gr)
				}
				continue
			case !errors.Is(err, store.ErrNotFound):
				return nil, err
			}
			n, err := sets[i].Result()
			if err != nil {
				return nil, unavailable("list grants", err)
			}
			if n == 0 {
				gone = append(gone, id)
			}
		}
	}
	if len(gone) > 0 {
		// Best effort: an entry left behind is dropped on the next read.
		_ = s.rdb.ZRem(ctx, idx, gone...).Err()
	}
	store.SortGrants(out)
	return out, nil
}

package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// statusErrors maps the scripts' status words to the store's errors.
var statusErrors = map[string]error{
	"OK":             nil,
	"NOTFOUND":       store.ErrNotFound,
	"EXISTS":         store.ErrAlreadyExists,
	"REVOKED":        store.ErrGrantRevoked,
	"CODE_REUSED":    store.ErrCodeReused,
	"REFRESH_REUSED": store.ErrRefreshReused,
}

// runStatus runs a script and turns its status into the store's error.
func (s *Store) runStatus(ctx context.Context, op string, sc *goredis.Script, keys []string, args ...any) error {
	status, err := s.run(ctx, op, sc, keys, args...)
	if err != nil {
		return err
	}
	return statusError(op, status)
}

// decodeReply decodes the reply of a GET or GETDEL: ErrNotFound if the key was
// missing, holds a replay marker (reused is returned then instead, when not nil) or
// the record has expired. expiresAt may be nil for records whose key TTL is their only
// expiry.
func decodeReply[T any](op string, cmd *goredis.StringCmd, reused error, expiresAt func(*T) time.Time) (T, error) {
	var v T
	raw, err := cmd.Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return v, store.ErrNotFound
	case err != nil:
		return v, unavailable(op, err)
	case strings.HasPrefix(raw, replayMarker):
		if reused == nil {
			return v, store.ErrNotFound
		}
		return v, reused
	}
	if err := decode(raw, &v); err != nil {
		return v, fmt.Errorf("redis store: %s: decode: %w", op, err)
	}
	if expiresAt != nil && !live(expiresAt(&v)) {
		return v, store.ErrNotFound
	}
	return v, nil
}

func clientExpiry(c *store.Client) time.Time                { return c.ExpiresAt }
func pendingExpiry(p *store.PendingAuthorization) time.Time { return p.ExpiresAt }
func codeExpiry(c *store.AuthorizationCode) time.Time       { return c.ExpiresAt }
func grantExpiry(g *store.Grant) time.Time                  { return g.ExpiresAt }
func tokenExpiry(t *store.Token) time.Time                  { return t.ExpiresAt }

// encodeAll encodes records for a script's arguments.
func encodeAll(op string, vs ...any) ([]string, error) {
	out := make([]string, len(vs))
	for i, v := range vs {
		s, err := encode(v)
		if err != nil {
			return nil, fmt.Errorf("redis store: %s: encode: %w", op, err)
		}
		out[i] = s
	}
	return out, nil
}

// CreateClient stores a new registration; ErrAlreadyExists if the ID is taken.
func (s *Store) CreateClient(ctx context.Context, c store.Client) error {
	return s.writeClient(ctx, "create client", createClientScript, c, 0)
}

// CreateClientLimited stores a new registration unless its source has limit live
// ones: one script, on the tenant's client slot.
func (s *Store) CreateClientLimited(ctx context.Context, c store.Client, limit int) error {
	return s.writeClient(ctx, "create client", createClientScript, c, limit)
}

// UpdateClient replaces a live registration; ErrNotFound if there is none.
func (s *Store) UpdateClient(ctx context.Context, c store.Client) error {
	return s.writeClient(ctx, "update client", updateClientScript, c, 0)
}

func (s *Store) writeClient(ctx context.Context, op string, sc *goredis.Script, c store.Client, limit int) error {
	rec, err := encodeAll(op, c)
	if err != nil {
		return err
	}
	keys := []string{s.k.client(c.ID), s.k.clients()}
	if c.Source != "" {
		keys = append(keys, s.k.clientSource(c.Source))
	}
	status, err := s.run(ctx, op, sc, keys, rec[0], ttl(c.ExpiresAt), c.ID, ms(c.ExpiresAt), ms(time.Now()), limit)
	if err != nil {
		return err
	}
	if at, ok := strings.CutPrefix(status, "LIMIT:"); ok {
		n, _ := strconv.ParseInt(at, 10, 64)
		return &store.SourceLimitError{FreeAt: time.UnixMilli(n)}
	}
	if err := statusError(op, status); err != nil {
		return err
	}
	rememberClient(rec[0], c)
	return nil
}

// statusError turns a script's status word into the store's error.
func statusError(op, status string) error {
	err, ok := statusErrors[status]
	if !ok {
		return fmt.Errorf("redis store: %s: unexpected script status %q", op, status)
	}
	return err
}

// TouchClient rewrites the registration's last use and expiry: one script.
func (s *Store) TouchClient(ctx context.Context, u store.ClientUse) error {
	keys, args, err := s.touchArgs(u)
	if err != nil {
		return err
	}
	return s.runStatus(ctx, "touch client", touchClientScript, keys, args...)
}

func (s *Store) touchArgs(u store.ClientUse) ([]string, []any, error) {
	used, err1 := json.Marshal(u.LastUsedAt.UTC())
	exp, err2 := json.Marshal(u.ExpiresAt.UTC())
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, fmt.Errorf("redis store: touch client: %w", err)
	}
	keys := []string{s.k.client(u.ClientID), s.k.clients()}
	if u.Source != "" {
		keys = append(keys, s.k.clientSource(u.Source))
	}
	return keys, []any{string(used), string(exp), ms(u.ExpiresAt), ttl(u.ExpiresAt), u.ClientID}, nil
}

// touchPart is the touch script's part of a chain for the ClientUse u, none (no keys)
// when u is nil. Errors are dropped, as store.Grants documents.
func (s *Store) touchPart(u *store.ClientUse) chainPart {
	if u == nil {
		return chainPart{}
	}
	keys, args, err := s.touchArgs(*u)
	if err != nil {
		return chainPart{}
	}
	return chainPart{keys, args}
}

// pipeTouch queues the touch (when it has keys) on pipe, and returns what settles it
// after Exec: a script Redis had lost is run again on its own.
func (s *Store) pipeTouch(ctx context.Context, pipe goredis.Pipeliner, touch chainPart) func() {
	if len(touch.keys) == 0 {
		return func() {}
	}
	cmd := touchClientScript.EvalSha(ctx, pipe, touch.keys, touch.args...)
	return func() {
		if err := cmd.Err(); err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			_ = touchClientScript.Run(ctx, s.rdb, touch.keys, touch.args...).Err()
		}
	}
}

// cluster reports whether the store runs on a Redis Cluster, where keys of different
// hash tags lie in different slots and one script cannot reach them all.
func (s *Store) cluster() bool {
	_, ok := s.rdb.(*goredis.ClusterClient)
	return ok
}

// GetClient reads a registration.
func (s *Store) GetClient(ctx context.Context, id string) (store.Client, error) {
	return decodeReply("get client", s.str(ctx, "get", s.k.client(id)), nil, clientExpiry)
}

// DeleteClient removes a registration; idempotent.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.runStatus(ctx, "delete client", deleteClientScript, []string{s.k.client(id), s.k.clients()}, id, s.k.clientSource(""))
}

// CountClients counts live registrations in the expiry index: one ZCOUNT.
func (s *Store) CountClients(ctx context.Context) (int, error) {
	n, err := s.rdb.ZCount(ctx, s.k.clients(), "("+ms(time.Now()), "+inf").Result()
	if err != nil {
		return 0, unavailable("count clients", err)
	}
	return int(n), nil
}

// ListClients reads the expiry index, then the records in MGETs of listBatch (every
// client key shares the tenant's hash tag, so one MGET is one slot).
func (s *Store) ListClients(ctx context.Context) ([]store.Client, error) {
	now := ms(time.Now())
	ids, err := s.rdb.ZRangeByScore(ctx, s.k.clients(), &goredis.ZRangeBy{Min: "(" + now, Max: "+inf"}).Result()
	if err != nil {
		return nil, unavailable("list clients", err)
	}
	out := make([]store.Client, 0, len(ids))
	for start := 0; start < len(ids); start += listBatch {
		batch := ids[start:min(start+listBatch, len(ids))]
		keys := make([]string, len(batch))
		for i, id := range batch {
			keys[i] = s.k.client(id)
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, unavailable("list clients", err)
		}
		for _, v := range vals {
			raw, ok := v.(string)
			if !ok {
				continue // expired since the index was read
			}
			var c store.Client
			if err := decode(raw, &c); err != nil {
				return nil, fmt.Errorf("redis store: list clients: decode: %w", err)
			}
			if live(c.ExpiresAt) {
				out = append(out, c)
			}
		}
	}
	store.SortClients(out)
	return out, nil
}

// SavePending stores p under stateHash, replacing any record there.
func (s *Store) SavePending(ctx context.Context, stateHash string, p store.PendingAuthorization) error {
	rec, err := encodeAll("save pending", p)
	if err != nil {
		return err
	}
	return s.setOrDelete(ctx, "save pending", s.k.pending(stateHash), rec[0], ttl(p.ExpiresAt))
}

// setOrDelete writes a single-key record for px milliseconds, or removes the key
// when the record is dead on arrival (a replace must not leave the old one).
func (s *Store) setOrDelete(ctx context.Context, op, key, value string, px int64) error {
	var err error
	if px > 0 {
		err = s.status(ctx, "set", key, value, "px", px)
	} else {
		err = s.status(ctx, "del", key)
	}
	if err != nil {
		return unavailable(op, err)
	}
	return nil
}

// TakePending reads and deletes the record in one GETDEL.
func (s *Store) TakePending(ctx context.Context, stateHash string) (store.PendingAuthorization, error) {
	return decodeReply("take pending", s.str(ctx, "getdel", s.k.pending(stateHash)), nil, pendingExpiry)
}

// SaveCode stores a new code under its grant.
func (s *Store) SaveCode(ctx context.Context, grantID, codeHash string, c store.AuthorizationCode) error {
	if err := checkGrantID(grantID); err != nil {
		return err
	}
	rec, err := encodeAll("save code", c)
	if err != nil {
		return err
	}
	g := s.k.grant(grantID)
	return s.runStatus(ctx, "save code", saveCodeScript,
		[]string{g.code(codeHash), g.set(), g.revoked()}, rec[0], ttl(c.ExpiresAt))
}

// PeekCode reads a code without consuming it.
func (s *Store) PeekCode(ctx context.Context, grantID, codeHash string) (store.AuthorizationCode, error) {
	return decodeReply("peek code", s.str(ctx, "get", s.k.grant(grantID).code(codeHash)), store.ErrCodeReused, codeExpiry)
}

// RedeemCode consumes the code and stores the grant and its first tokens: one script.
func (s *Store) RedeemCode(ctx context.Context, grantID, codeHash string, gr store.Grant, tokens store.TokenPair) error {
	if err := checkGrantID(grantID); err != nil {
		return err
	}
	g := s.k.grant(grantID)
	keys := []string{g.code(codeHash), g.set(), g.revoked(), g.grant(), g.access(tokens.AccessHash)}
	recs, err := encodeAll("redeem code", gr, tokens.Access)
	if err != nil {
		return err
	}
	args := []any{recs[0], ttl(gr.ExpiresAt), recs[1], ttl(tokens.Access.ExpiresAt)}
	if tokens.RefreshHash != "" {
		rt, err := encodeAll("redeem code", tokens.Refresh)
		if err != nil {
			return err
		}
		keys = append(keys, g.refresh(tokens.RefreshHash))
		args = append(args, rt[0], ttl(tokens.Refresh.ExpiresAt))
	}
	err = s.redeemAndIndex(ctx, gr, tokens.ClientUse, keys, args)
	if revocationErr(err) {
		return s.recordGrant(ctx, grantID, err)
	}
	return err
}

// GetAccessToken reads an access token: one GET.
func (s *Store) GetAccessToken(ctx context.Context, grantID, tokenHash string) (store.Token, error) {
	return decodeReply("get access token", s.str(ctx, "get", s.k.grant(grantID).access(tokenHash)), nil, tokenExpiry)
}

// GetRefreshToken reads a current refresh token; ErrRefreshReused for a rotated one.
func (s *Store) GetRefreshToken(ctx context.Context, grantID, tokenHash string) (store.Token, error) {
	return decodeReply("get refresh token", s.str(ctx, "get", s.k.grant(grantID).refresh(tokenHash)), store.ErrRefreshReused, tokenExpiry)
}

// RotateRefreshToken retires oldHash and stores next, or settles a reuse: one script.
func (s *Store) RotateRefreshToken(ctx context.Context, grantID, oldHash string, next store.TokenPair, succ store.Successor) ([]byte, error) {
	const op = "rotate refresh token"
	if err := checkGrantID(grantID); err != nil {
		return nil, err
	}
	g := s.k.grant(grantID)
	keys := []string{g.refresh(oldHash), g.set(), g.revoked(), g.successor(oldHash), g.access(next.AccessHash)}
	var sealedPX int64
	if len(succ.Sealed) > 0 {
		sealedPX = ttl(succ.Until)
	}
	args := []any{succ.ClientID, sealedPX, succ.Sealed, "", 0}
	if next.AccessHash != "" {
		recs, err := encodeAll(op, next.Access)
		if err != nil {
			return nil, err
		}
		args[3], args[4] = recs[0], ttl(next.Access.ExpiresAt)
	}
	if next.RefreshHash != "" {
		rt, err := encodeAll(op, next.Refresh)
		if err != nil {
			return nil, err
		}
		keys = append(keys, g.refresh(next.RefreshHash))
		args = append(args, rt[0], ttl(next.Refresh.ExpiresAt))
	}
	reply, err := s.rotate(ctx, keys, args, next.ClientUse)
	if err != nil {
		return nil, unavailable(op, err)
	}
	status, _ := reply[0].(string)
	switch status {
	case "SUCCESSOR":
		if len(reply) == 2 {
			if sealed, ok := reply[1].(string); ok {
				return []byte(sealed), nil
			}
		}
	case "NOPAIR":
		return nil, fmt.Errorf("redis store: %s: a current refresh token with no new pair", op)
	default:
		if err, ok := statusErrors[status]; ok {
			if revocationErr(err) {
				return nil, s.recordGrant(ctx, grantID, err)
			}
			return nil, err
		}
	}
	return nil, fmt.Errorf("redis store: %s: unexpected script reply %v", op, reply)
}

// rotate runs the rotation script, with the client's use when there is one: one
// script (chain) that concurrent rotations' commands share (autopipeline.go); on a
// Cluster, where the client's keys lie in another slot, a pipeline of the two.
func (s *Store) rotate(ctx context.Context, keys []string, args []any, u *store.ClientUse) ([]any, error) {
	touch := s.touchPart(u)
	if len(touch.keys) == 0 {
		return rotateScript.Run(ctx, scripter{s.rdb, s}, keys, args...).Slice()
	}
	if !s.cluster() {
		k, a := chainArgs(chainPart{keys, args}, touch)
		return rotateTouchedScript.Run(ctx, scripter{s.rdb, s}, k, a...).Slice()
	}
	pipe := s.rdb.Pipeline()
	touched := s.pipeTouch(ctx, pipe, touch)
	cmd := rotateScript.EvalSha(ctx, pipe, keys, args...)
	_, _ = pipe.Exec(ctx) // each command carries its own answer or error
	touched()
	if err := cmd.Err(); err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		return rotateScript.Run(ctx, scripter{s.rdb, s}, keys, args...).Slice()
	}
	return cmd.Slice()
}

// GetGrant reads a grant.
func (s *Store) GetGrant(ctx context.Context, grantID string) (store.Grant, error) {
	return decodeReply("get grant", s.str(ctx, "get", s.k.grant(grantID).grant()), nil, grantExpiry)
}

// RevokeGrant deletes the grant and everything live under it: one script.
func (s *Store) RevokeGrant(ctx context.Context, grantID string) error {
	if err := checkGrantID(grantID); err != nil {
		return err
	}
	g := s.k.grant(grantID)
	status, err := s.run(ctx, "revoke grant", revokeGrantScript, []string{g.set(), g.revoked()})
	switch {
	case err != nil:
		return err
	case status == "NONE":
		return nil
	case status != "OK":
		return fmt.Errorf("redis store: revoke grant: unexpected script status %q", status)
	}
	return s.record(ctx, grantID, "")
}

// RevokeAccessToken deletes one access token; idempotent.
func (s *Store) RevokeAccessToken(ctx context.Context, grantID, tokenHash string) error {
	if err := checkGrantID(grantID); err != nil {
		return err
	}
	g := s.k.grant(grantID)
	return s.runStatus(ctx, "revoke access token", revokeAccessScript, []string{g.access(tokenHash), g.set()})
}

// PutUpstreamToken stores the user's upstream token for ttl.
func (s *Store) PutUpstreamToken(ctx context.Context, userID string, t store.UpstreamToken, ttl time.Duration) error {
	rec, err := encodeAll("put upstream token", t)
	if err != nil {
		return err
	}
	return s.setOrDelete(ctx, "put upstream token", s.k.upstream(userID), rec[0], ttl.Milliseconds())
}

// GetUpstreamToken reads the user's upstream token; its key's TTL is its only expiry.
func (s *Store) GetUpstreamToken(ctx context.Context, userID string) (store.UpstreamToken, error) {
	return decodeReply[store.UpstreamToken]("get upstream token", s.str(ctx, "get", s.k.upstream(userID)), nil, nil)
}

// DeleteUpstreamToken removes the user's upstream token; idempotent.
func (s *Store) DeleteUpstreamToken(ctx context.Context, userID string) error {
	if err := s.status(ctx, "del", s.k.upstream(userID)); err != nil {
		return unavailable("delete upstream token", err)
	}
	return nil
}

// AcquireLease takes the lease with one SET NX PX.
func (s *Store) AcquireLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	if ttl.Milliseconds() <= 0 {
		return false, nil
	}
	err := s.rdb.SetArgs(ctx, s.k.lease(name), s.holder, goredis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case errors.Is(err, goredis.Nil):
		return false, nil
	case err != nil:
		return false, unavailable("acquire lease", err)
	}
	return true, nil
}

// ReleaseLease deletes the lease if this store holds it: one script.
func (s *Store) ReleaseLease(ctx context.Context, name string) error {
	return s.runStatus(ctx, "release lease", releaseLeaseScript, []string{s.k.lease(name)}, s.holder)
}

// ReadTokenRequest reads a token request's client and code or refresh token in one
// round trip: one MGET, which concurrent requests' commands share (autopipeline.go);
// on a Cluster, where the keys lie in two slots, a pipeline (one round trip per node
// holding a key, in parallel).
func (s *Store) ReadTokenRequest(ctx context.Context, k store.TokenRequestKeys) store.TokenRequestRecords {
	if _, cluster := s.rdb.(*goredis.ClusterClient); !cluster {
		return s.readTokenRequestMGET(ctx, k)
	}
	var out store.TokenRequestRecords
	pipe := s.rdb.Pipeline()
	client := pipe.Get(ctx, s.k.client(k.ClientID))
	var code, refresh *goredis.StringCmd
	g := s.k.grant(k.GrantID)
	if k.CodeHash != "" {
		code = pipe.Get(ctx, g.code(k.CodeHash))
	}
	if k.RefreshHash != "" {
		refresh = pipe.Get(ctx, g.refresh(k.RefreshHash))
	}
	_, _ = pipe.Exec(ctx) // each command carries its own answer or error
	out.Client, out.ClientErr = decodeReply("get client", client, nil, clientExpiry)
	if code != nil {
		out.Code, out.CodeErr = decodeReply("peek code", code, store.ErrCodeReused, codeExpiry)
	}
	if refresh != nil {
		out.Refresh, out.RefreshErr = decodeReply("get refresh token", refresh, store.ErrRefreshReused, tokenExpiry)
	}
	return out
}

func (s *Store) readTokenRequestMGET(ctx context.Context, k store.TokenRequestKeys) store.TokenRequestRecords {
	var out store.TokenRequestRecords
	g := s.k.grant(k.GrantID)
	args := []any{"mget", s.k.client(k.ClientID)}
	if k.CodeHash != "" {
		args = append(args, g.code(k.CodeHash))
	}
	if k.RefreshHash != "" {
		args = append(args, g.refresh(k.RefreshHash))
	}
	mget := goredis.NewSliceCmd(ctx, args...)
	err := s.send(ctx, mget)
	var vals []any
	if !abandoned(ctx, err) {
		vals, err = mget.Result()
	}
	if err == nil && len(vals) != len(args)-1 {
		err = fmt.Errorf("MGET of %d keys answered %d values", len(args)-1, len(vals))
	}
	// next is the next value as the reply of its own GET, for decodeReply.
	next := func() *goredis.StringCmd {
		c := goredis.NewStringCmd(ctx)
		switch {
		case err != nil:
			c.SetErr(err)
		case vals[0] == nil:
			c.SetErr(goredis.Nil)
		default:
			v, _ := vals[0].(string)
			c.SetVal(v)
		}
		if err == nil {
			vals = vals[1:]
		}
		return c
	}
	out.Client, out.ClientErr = decodeReply("get client", next(), nil, clientExpiry)
	if k.CodeHash != "" {
		out.Code, out.CodeErr = decodeReply("peek code", next(), store.ErrCodeReused, codeExpiry)
	}
	if k.RefreshHash != "" {
		out.Refresh, out.RefreshErr = decodeReply("get refresh token", next(), store.ErrRefreshReused, tokenExpiry)
	}
	return out
}

// SaveLogin writes the user's upstream token and saves the code in one round trip: one
// script (saveLoginScript); on a Cluster, where the two keys lie in two slots, a
// pipeline of SET and saveCodeScript (one round trip per node holding a key, in
// parallel). Should Redis have lost the script (a restart), a second round trip
// sends it.
func (s *Store) SaveLogin(ctx context.Context, l store.Login) error {
	if err := checkGrantID(l.GrantID); err != nil {
		return err
	}
	recs, err := encodeAll("save login", l.Upstream, l.Code)
	if err != nil {
		return err
	}
	g := s.k.grant(l.GrantID)
	keys := []string{g.code(l.CodeHash), g.set(), g.revoked()}
	args := []any{recs[1], ttl(l.Code.ExpiresAt)}
	if _, cluster := s.rdb.(*goredis.ClusterClient); !cluster {
		// One script, which concurrent requests' commands share (autopipeline.go).
		return s.runStatus(ctx, "save login", saveLoginScript, append(keys, s.k.upstream(l.UserID)),
			append(args, recs[0], l.UpstreamTTL.Milliseconds())...)
	}
	pipe := s.rdb.Pipeline()
	var put goredis.Cmder
	if px := l.UpstreamTTL.Milliseconds(); px > 0 {
		put = pipe.Set(ctx, s.k.upstream(l.UserID), recs[0], time.Duration(px)*time.Millisecond)
	} else {
		put = pipe.Del(ctx, s.k.upstream(l.UserID))
	}
	save := saveCodeScript.EvalSha(ctx, pipe, keys, args...)
	_, _ = pipe.Exec(ctx) // each command carries its own answer or error
	if err := put.Err(); err != nil {
		return unavailable("put upstream token", err)
	}
	if err := save.Err(); err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		return s.runStatus(ctx, "save code", saveCodeScript, keys, args...)
	}
	status, err := save.Text()
	if err != nil {
		return unavailable("save code", err)
	}
	err, ok := statusErrors[status]
	if !ok {
		return fmt.Errorf("redis store: save code: unexpected script status %q", status)
	}
	return err
}

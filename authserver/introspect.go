package authserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// upstreamRefreshSkew refreshes an upstream token this long before it expires, so the
// MCP server never receives one that dies in flight.
const upstreamRefreshSkew = 30 * time.Second

// One refresh of a user's upstream token at a time, across replicas (see
// freshUpstreamToken).
const (
	// upstreamLeaseTTL is how long the caller refreshing a user's upstream token
	// holds the lease: longer than the upstream call it covers (upstreamTimeout), so
	// it never lapses under a live refresh, and short enough that a replica dying
	// mid-refresh blocks nobody for long.
	upstreamLeaseTTL = upstreamTimeout + 15*time.Second
	// upstreamLeaseRelease bounds giving the lease back, which runs even when the
	// request that took it has ended.
	upstreamLeaseRelease = 5 * time.Second
	// upstreamPollFirst and upstreamPollMax pace a waiting caller's re-reads of the
	// stored token: quick at first (a refresh takes tens of milliseconds), then
	// backing off so a slow upstream costs the store little.
	upstreamPollFirst = 10 * time.Millisecond
	upstreamPollMax   = 200 * time.Millisecond
	// upstreamWaitMax bounds how long a caller waits for another caller's refresh of
	// the same upstream token before giving up (transiently): as long as that refresh
	// may take.
	upstreamWaitMax = upstreamTimeout
)

// errUpstreamRelogin: the upstream refused the user's refresh token for good
// (invalid_grant: the user revoked our access upstream), now or on an earlier call.
// The grant of the request that found it has been revoked; the user must log in
// again.
var errUpstreamRelogin = errors.New("the upstream refused the user's refresh token: the user must log in again")

// errUpstreamRefreshFailed: the caller that held the lease refreshed nothing usable
// (a transient upstream failure); its waiters do not retry in turn.
var errUpstreamRefreshFailed = errors.New("another request's upstream refresh failed")

// IntrospectionResponse is RFC 7662 §2.2, plus the user's upstream access token for
// callers allowed to see it (StaticClient.IntrospectUpstream).
type IntrospectionResponse struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	Audience  []string `json:"aud,omitempty"` // the RFC 8707 resources the token is bound to
	ExpiresAt int64    `json:"exp,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	Issuer    string   `json:"iss,omitempty"`
	TokenType string   `json:"token_type,omitempty"`

	// UpstreamAccessToken is the user's access token at the upstream provider,
	// refreshed first if it had expired. Empty when the caller may not see it or
	// there is none usable (the user must log in again).
	UpstreamAccessToken string `json:"upstream_access_token,omitempty"`
	// UpstreamTokenExpiresAt is when UpstreamAccessToken expires (Unix seconds; absent
	// when unknown).
	UpstreamTokenExpiresAt int64 `json:"upstream_token_expires_at,omitempty"`
	// UpstreamProvider is the upstream provider's type ("github", "oidc", ...).
	UpstreamProvider string `json:"upstream_provider,omitempty"`
}

// handleIntrospect is RFC 7662 introspection for MCP servers. §2.1: "the endpoint MUST
// also require some form of authorization to access this endpoint", so callers are
// confidential clients authenticated with their secret. Every token we cannot vouch
// for gets {"active": false}, whatever the reason (§2.2).
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	if !s.allowMethods(w, r, http.MethodPost) {
		return
	}
	if err := parseForm(w, r, maxFormBody); err != nil {
		s.writeError(w, r, err)
		return
	}
	caller, err := s.authenticateClient(r, authAnySecret)
	if err == nil && !caller.confidential() {
		err = errInvalidClient("introspection requires a confidential client")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" || len(r.PostForm["token"]) > 1 {
		s.writeError(w, r, errInvalidRequest("token is required, once"))
		return
	}
	resp, err := s.introspect(r.Context(), caller, tok)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) introspect(ctx context.Context, caller *client, tok string) (*IntrospectionResponse, error) {
	rec, kind, active, err := s.lookupToken(ctx, tok)
	if err != nil {
		return nil, err
	}
	if !active {
		return &IntrospectionResponse{Active: false}, nil
	}
	// A client_credentials token has no user: its subject is the client itself
	// (RFC 9068 §2.2 says the same of JWT access tokens).
	subject := rec.UserID
	if subject == "" {
		subject = rec.ClientID
	}
	resp := &IntrospectionResponse{
		Active: true, Scope: rec.Scope, ClientID: rec.ClientID, Subject: subject,
		Audience: rec.Resource, ExpiresAt: rec.ExpiresAt.Unix(), IssuedAt: rec.IssuedAt.Unix(),
		Issuer: s.issuer,
	}
	if kind == prefixAccess {
		resp.TokenType = "Bearer"
		if caller.IntrospectUpstream && rec.UserID != "" && s.addUpstreamToken(ctx, resp, rec.UserID, rec.GrantID) {
			// The upstream refused the user for good and the grant is revoked: the
			// MCP server answers invalid_token and its client logs in again.
			return &IntrospectionResponse{Active: false}, nil
		}
	}
	return resp, nil
}

// lookupToken finds the record of an access or refresh token we issued. active is
// false for anything we cannot vouch for (unknown, expired, revoked, rotated, not
// ours); err is set only when the store failed, so the caller can answer 503 rather
// than call a live token dead. Introspection and token exchange both decide with it.
//
// A JWT access token is checked as any verifier would (signature by a published key,
// typ, iss, exp) and then in the store under its grant and jti, so that a revoked one
// is inactive: still one store read.
func (s *Server) lookupToken(ctx context.Context, tok string) (rec store.Token, kind string, active bool, err error) {
	kind = tokenKind(tok)
	switch kind {
	case "":
		claims, ok := s.verifyJWT(tok)
		if !ok {
			return store.Token{}, kind, false, nil
		}
		kind = prefixAccess
		rec, err = s.store.GetAccessToken(ctx, claims.GrantID, s.keys.hash(labelJTI, claims.JTI))
	case prefixAccess:
		grantID, _ := parseToken(prefixAccess, tok)
		rec, err = s.store.GetAccessToken(ctx, grantID, s.keys.hash(labelToken, tok))
	case prefixRefresh:
		grantID, _ := parseToken(prefixRefresh, tok)
		rec, err = s.store.GetRefreshToken(ctx, grantID, s.keys.hash(labelToken, tok))
	default:
		return store.Token{}, kind, false, nil
	}
	if isDomainError(err) {
		return store.Token{}, kind, false, nil
	}
	if err != nil {
		return store.Token{}, kind, false, err
	}
	if !rec.ExpiresAt.IsZero() && !s.now().Before(rec.ExpiresAt) {
		return store.Token{}, kind, false, nil
	}
	return rec, kind, true, nil
}

func isDomainError(err error) bool {
	for _, d := range domainErrors {
		if errors.Is(err, d) {
			return true
		}
	}
	return false
}

// addUpstreamToken adds the user's upstream access token, refreshing it first when it
// is about to expire (the origin's behaviour). Failures leave the fields out: the MCP
// token is still valid, only the upstream call will need a new login. It reports
// whether the grant was revoked because the upstream refused the user for good.
func (s *Server) addUpstreamToken(ctx context.Context, resp *IntrospectionResponse, userID, grantID string) (revoked bool) {
	tok, err := s.freshUpstreamToken(ctx, userID, grantID)
	if err != nil {
		s.log.InfoContext(ctx, "no usable upstream token", "user", userID, "err", err)
		return errors.Is(err, errUpstreamRelogin)
	}
	resp.UpstreamAccessToken = tok.AccessToken
	resp.UpstreamProvider = s.upstream.Name()
	if !tok.Expiry.IsZero() {
		resp.UpstreamTokenExpiresAt = tok.Expiry.Unix()
	}
	return false
}

// freshUpstreamToken returns the upstream token of userID for a request made under
// grantID (the grant of the token the caller presented), refreshed first when it
// expires within upstreamRefreshSkew. Introspection and token exchange call it.
//
// Of many callers that find the same token about to expire, on any replica, one takes
// the store lease "upstream:<userID>" and refreshes; the others wait, up to
// upstreamWaitMax, re-reading the stored token until it changes, and use the result.
// So the upstream sees one refresh, and a refresh token the upstream rotates is never
// spent twice.
//
// Errors:
//   - errUpstreamRelogin: the upstream refused the user's refresh token for good (now,
//     or earlier: the stored record says so). grantID has been revoked (unless empty)
//     and the upstream token dropped; answer as for a dead token (introspection:
//     inactive; token exchange: invalid_grant).
//   - store.ErrNotFound: the server holds no upstream token for the user.
//   - upstream.ErrNoRefresh: the token is about to expire and there is no refresh
//     token to renew it with.
//   - anything else is transient (store or upstream unreachable, a 5xx, the wait for
//     another caller's refresh ended): nothing was revoked.
func (s *Server) freshUpstreamToken(ctx context.Context, userID, grantID string) (*upstream.Token, error) {
	tok, seen, err := s.readUpstreamToken(ctx, userID)
	switch {
	case err != nil:
		return nil, s.upstreamGone(ctx, userID, grantID, err)
	case s.upstreamFresh(tok):
		return tok, nil
	case tok.RefreshToken == "":
		return nil, upstream.ErrNoRefresh
	}
	lease := "upstream:" + userID
	deadline := time.NewTimer(s.upstreamWait)
	defer deadline.Stop()
	for pause, waited := upstreamPollFirst, false; ; pause = min(2*pause, upstreamPollMax) {
		held, err := s.store.AcquireLease(ctx, lease, upstreamLeaseTTL)
		if err != nil {
			return nil, err
		}
		if held {
			defer s.releaseLease(ctx, lease)
			return s.refreshUpstream(ctx, userID, grantID, seen, waited)
		}
		// Someone else, maybe on another replica, is refreshing: wait for its result.
		waited = true
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, errors.New("timed out waiting for another request's upstream refresh")
		case <-time.After(pause):
		}
		tok, rec, err := s.readUpstreamToken(ctx, userID)
		if err != nil {
			return nil, s.upstreamGone(ctx, userID, grantID, err)
		}
		if s.upstreamRenewed(tok, rec, seen) {
			return tok, nil
		}
	}
}

// refreshUpstream runs the refresh while holding the user's lease. seen is the record
// the caller found stale; waited says the caller waited for another holder first.
func (s *Server) refreshUpstream(ctx context.Context, userID, grantID string, seen store.UpstreamToken, waited bool) (*upstream.Token, error) {
	// The token may have been renewed between the caller's read and its lease.
	tok, rec, err := s.readUpstreamToken(ctx, userID)
	switch {
	case err != nil:
		return nil, s.upstreamGone(ctx, userID, grantID, err)
	case s.upstreamRenewed(tok, rec, seen):
		return tok, nil
	case waited:
		// The holder before us gave the lease back without renewing the token: its
		// refresh failed. Do not retry it in turn, one caller after another.
		return nil, errUpstreamRefreshFailed
	case tok.RefreshToken == "":
		return nil, upstream.ErrNoRefresh
	}
	// Detached from the caller: an upstream that rotates refresh tokens has spent the
	// old one once it answers, so the answer is stored (for the waiters, and for the
	// next request) even when the caller has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamTimeout)
	defer cancel()
	next, err := s.upstream.Refresh(ctx, tok.RefreshToken)
	switch {
	case errors.Is(err, upstream.ErrNoRefresh):
		s.metrics.upstreamRefreshes.WithLabelValues("revoked").Inc()
		s.log.WarnContext(ctx, "upstream refused the refresh token; the user must log in again", "user", userID, "err", err)
		if err := s.markRelogin(ctx, userID); err != nil {
			return nil, err
		}
		return nil, s.upstreamGone(ctx, userID, grantID, errUpstreamRelogin)
	case err != nil:
		s.metrics.upstreamRefreshes.WithLabelValues("failed").Inc()
		return nil, err
	}
	s.metrics.upstreamRefreshes.WithLabelValues("ok").Inc()
	if next.RefreshToken == "" {
		next.RefreshToken = tok.RefreshToken
	}
	// RFC 6749 §5.1: a response without scope has the scope asked for, and a refresh
	// asks for the original grant's (§6). The stored token must keep saying what it
	// covers (stepup.go).
	if next.Scope == "" {
		next.Scope = tok.Scope
	}
	if err := s.saveUpstreamToken(ctx, userID, next); err != nil {
		return nil, err
	}
	return next, nil
}

// upstreamFresh reports whether tok needs no refresh yet.
func (s *Server) upstreamFresh(tok *upstream.Token) bool {
	return tok.Expiry.IsZero() || s.now().Add(upstreamRefreshSkew).Before(tok.Expiry)
}

// upstreamRenewed reports whether the stored token is no longer the stale one the
// caller saw and can be used: fresh, or stored since and not yet expired (an upstream
// whose tokens live less than the skew is refreshed once per burst, not per caller).
func (s *Server) upstreamRenewed(tok *upstream.Token, rec, seen store.UpstreamToken) bool {
	if s.upstreamFresh(tok) {
		return true
	}
	changed := !rec.UpdatedAt.Equal(seen.UpdatedAt) || !bytes.Equal(rec.Ciphertext, seen.Ciphertext)
	return changed && s.now().Before(tok.Expiry)
}

// releaseLease gives the lease back, also when the request has ended: a lease left
// behind would hold the user's next refresh up to upstreamLeaseTTL.
func (s *Server) releaseLease(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamLeaseRelease)
	defer cancel()
	if err := s.store.ReleaseLease(ctx, name); err != nil {
		s.log.WarnContext(ctx, "release lease", "lease", name, "err", err)
	}
}

// markRelogin replaces the user's upstream token with the record that says the
// upstream refused it, so that every grant of the user, on any replica, is revoked
// when it next needs the token (see upstreamGone).
func (s *Server) markRelogin(ctx context.Context, userID string) error {
	rec := store.UpstreamToken{ReloginRequired: true, UpdatedAt: s.now()}
	if err := s.store.PutUpstreamToken(ctx, userID, rec, s.opts.ExternalTokenTTL); err != nil {
		return fmt.Errorf("mark upstream token refused: %w", err)
	}
	return nil
}

// upstreamGone passes err on; for errUpstreamRelogin it first revokes grantID, which
// depends on the refused upstream token, and counts it once (when the grant was still
// live).
func (s *Server) upstreamGone(ctx context.Context, userID, grantID string, err error) error {
	if !errors.Is(err, errUpstreamRelogin) || grantID == "" {
		return err
	}
	if _, gerr := s.store.GetGrant(ctx, grantID); gerr != nil {
		if !errors.Is(gerr, store.ErrNotFound) {
			return gerr
		}
		return err // revoked already, by this request's twin or by another path
	}
	if rerr := s.store.RevokeGrant(ctx, grantID); rerr != nil {
		return rerr
	}
	s.metrics.reloginRequired.Inc()
	s.log.WarnContext(ctx, "grant revoked: the upstream refused the user's token; the user must log in again",
		"grant", grantID, "user", userID)
	return err
}

package authserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// upstreamRefreshSkew refreshes an upstream token this long before it expires, so the
// MCP server never receives one that dies in flight.
const upstreamRefreshSkew = 30 * time.Second

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
	resp := &IntrospectionResponse{
		Active: true, Scope: rec.Scope, ClientID: rec.ClientID, Subject: rec.UserID,
		Audience: rec.Resource, ExpiresAt: rec.ExpiresAt.Unix(), IssuedAt: rec.IssuedAt.Unix(),
		Issuer: s.issuer,
	}
	if kind == prefixAccess {
		resp.TokenType = "Bearer"
		if caller.IntrospectUpstream {
			s.addUpstreamToken(ctx, resp, rec.UserID)
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
// has expired (the origin's behaviour). Failures leave the fields out: the MCP token is
// still valid, only the upstream call will need a new login.
func (s *Server) addUpstreamToken(ctx context.Context, resp *IntrospectionResponse, userID string) {
	tok, err := s.freshUpstreamToken(ctx, userID)
	if err != nil {
		s.log.InfoContext(ctx, "no usable upstream token", "user", userID, "err", err)
		return
	}
	resp.UpstreamAccessToken = tok.AccessToken
	resp.UpstreamProvider = s.upstream.Name()
	if !tok.Expiry.IsZero() {
		resp.UpstreamTokenExpiresAt = tok.Expiry.Unix()
	}
}

// freshUpstreamToken returns the user's upstream token, refreshed and stored again if
// it expires within upstreamRefreshSkew.
func (s *Server) freshUpstreamToken(ctx context.Context, userID string) (*upstream.Token, error) {
	tok, err := s.loadUpstreamToken(ctx, userID)
	if err != nil {
		return nil, err
	}
	if tok.Expiry.IsZero() || s.now().Add(upstreamRefreshSkew).Before(tok.Expiry) {
		return tok, nil
	}
	if tok.RefreshToken == "" {
		return nil, upstream.ErrNoRefresh
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	next, err := s.upstream.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		return nil, err
	}
	if next.RefreshToken == "" {
		next.RefreshToken = tok.RefreshToken
	}
	if err := s.saveUpstreamToken(ctx, userID, next); err != nil {
		return nil, err
	}
	return next, nil
}

package authserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// handleRevoke is RFC 7009 revocation. The client authenticates as at the token
// endpoint (public clients by client_id alone, §2.1). A refresh token revokes its whole
// grant; an access token only itself (§2.1 lets the server do more, not less). Unknown,
// expired and malformed tokens get 200: §2.2, "invalid tokens do not cause an error
// response since the client cannot handle such an error in a reasonable way".
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if preflight(w, r) || !s.allowMethods(w, r, http.MethodPost) {
		return
	}
	if err := s.revoke(w, r); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(w, r, maxFormBody); err != nil {
		return err
	}
	c, err := s.authenticateClient(r, authAnySecret)
	if err != nil {
		return err
	}
	tok := r.PostForm.Get("token")
	if tok == "" || len(r.PostForm["token"]) > 1 {
		return errInvalidRequest("token is required, once")
	}
	switch tokenKind(tok) {
	case prefixRefresh:
		return s.revokeRefresh(r.Context(), c, tok)
	case prefixAccess:
		return s.revokeAccess(r.Context(), c, tok)
	case "":
		if claims, ok := s.verifyJWT(tok); ok {
			return s.revokeJWT(r.Context(), c, claims)
		}
	}
	return nil
}

// revokeRefresh revokes the grant of a refresh token issued to c. A rotated refresh
// token (ErrRefreshReused proves it is genuine) still names the grant its owner wants
// gone, so it revokes too. Only a hash match counts: the grant ID inside a token is not
// a secret, and must never be enough to revoke someone's grant.
func (s *Server) revokeRefresh(ctx context.Context, c *client, tok string) error {
	grantID, _ := parseToken(prefixRefresh, tok)
	rec, err := s.store.GetRefreshToken(ctx, grantID, s.keys.hash(labelToken, tok))
	if errors.Is(err, store.ErrRefreshReused) {
		g, gerr := s.store.GetGrant(ctx, grantID)
		if gerr != nil || g.ClientID != c.ID {
			return ignoreDomain(gerr)
		}
		return s.store.RevokeGrant(ctx, grantID)
	}
	if err != nil {
		return ignoreDomain(err)
	}
	if rec.ClientID != c.ID {
		return wrongClient()
	}
	return s.store.RevokeGrant(ctx, grantID)
}

func (s *Server) revokeAccess(ctx context.Context, c *client, tok string) error {
	grantID, _ := parseToken(prefixAccess, tok)
	hash := s.keys.hash(labelToken, tok)
	rec, err := s.store.GetAccessToken(ctx, grantID, hash)
	if err != nil {
		return ignoreDomain(err)
	}
	if rec.ClientID != c.ID {
		return wrongClient()
	}
	return s.store.RevokeAccessToken(ctx, grantID, hash)
}

// revokeJWT revokes one JWT access token issued to c: its store record, so
// introspection calls it inactive, and its jti in the revocation feed, so resource
// servers that verify JWTs on their own learn of it. The feed entry is written even
// when the record is already gone, so a retried revocation completes one that failed
// half-way.
func (s *Server) revokeJWT(ctx context.Context, c *client, claims *accessClaims) error {
	hash := s.keys.hash(labelJTI, claims.JTI)
	rec, err := s.store.GetAccessToken(ctx, claims.GrantID, hash)
	if err != nil && !isDomainError(err) {
		return err
	}
	if claims.ClientID != c.ID || (err == nil && rec.ClientID != c.ID) {
		return wrongClient()
	}
	if err == nil {
		if err := s.store.RevokeAccessToken(ctx, claims.GrantID, hash); err != nil {
			return err
		}
	}
	return s.store.RevokeTokenID(ctx, claims.GrantID, claims.JTI, time.Unix(claims.Expiry, 0))
}

// wrongClient: RFC 7009 §2.1, the server "verifies whether the token was issued to the
// client making the revocation request. If this validation fails, the request is
// refused".
func wrongClient() error {
	return newError(http.StatusBadRequest, errCodeUnauthorizedClient, "the token was not issued to this client")
}

// ignoreDomain turns "no such token" answers into success.
func ignoreDomain(err error) error {
	if isDomainError(err) {
		return nil
	}
	return err
}

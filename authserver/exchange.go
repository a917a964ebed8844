package authserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"

	"golang.org/x/oauth2"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// Token type identifiers (RFC 8693 §3). Only access tokens are exchanged: the user's
// access token of ours in, the user's upstream access token out.
const tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"

// Results of a token exchange, the label of mcpauth_token_exchanges_total: "issued",
// or the error code the caller got, or one of these.
const (
	exchangeIssued = "issued"
	// exchangeLoginRequired: the subject token is fine but the user's upstream token
	// is gone or refused; the user must log in again (invalid_grant on the wire).
	exchangeLoginRequired = "login_required"
)

// tokenExchange is the RFC 8693 token exchange grant, the token vault: an MCP server
// (a confidential client that serves RFC 8707 resources) presents the access token a
// user's MCP client sent it and receives the user's access token at the upstream
// provider, refreshed first when it has expired.
//
// The rule for the target: the audience parameter, when sent, must name the upstream
// provider as introspection does (upstream_provider, Provider.Name(): "github",
// "oidc", ...); resource is refused, since no other target exists. The caller must be
// one the subject token was issued for: one of its Resources is in the token's
// audience (RFC 8707 resources), so a token a user gave one MCP server cannot be
// turned into upstream access by another.
func (s *Server) tokenExchange(r *http.Request) (*tokenResponse, error) {
	ctx := r.Context()
	ex := exchangeLog{s: s}
	resp, err := s.exchange(r, &ex)
	ex.finish(ctx, err)
	return resp, err
}

// exchangeLog is what an exchange logs and counts, filled in as the request goes.
type exchangeLog struct {
	s        *Server
	clientID string
	userID   string
	grantID  string
}

// finish logs the exchange (never a token) and counts its result.
func (e *exchangeLog) finish(ctx context.Context, err error) {
	result := exchangeIssued
	if err != nil {
		result = asOAuthError(err).Code
		var le loginRequired
		if errors.As(err, &le) {
			result = exchangeLoginRequired
		}
	}
	e.s.metrics.exchanges.WithLabelValues(result).Inc()
	attrs := []any{"result", result, "client", e.clientID, "user", e.userID, "grant", e.grantID}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	e.s.log.InfoContext(ctx, "token exchange", attrs...)
}

// loginRequired is invalid_grant because the user's upstream authorization is gone.
type loginRequired struct{ cause error }

func (e loginRequired) Error() string { return "upstream token unusable: " + e.cause.Error() }
func (e loginRequired) Unwrap() []error {
	return []error{errInvalidGrant("the user's upstream authorization has expired or was revoked; the user must log in again"), e.cause}
}

func (s *Server) exchange(r *http.Request, ex *exchangeLog) (*tokenResponse, error) {
	ctx, form := r.Context(), r.PostForm
	if cred, err := readCredentials(r); err == nil {
		ex.clientID = cred.clientID // who claimed to call, for the log, before it is checked
	}
	c, err := s.authenticateClient(r, authExact)
	if err != nil {
		return nil, err
	}
	if !c.confidential() {
		return nil, errInvalidClient("token exchange requires a confidential client")
	}
	if len(c.Resources) == 0 {
		return nil, newError(http.StatusBadRequest, errCodeUnauthorizedClient, "the client serves no resource, so it may exchange no token")
	}
	if name, ok := singleValues(form); !ok {
		return nil, errInvalidRequest("parameter " + name + " is repeated")
	}
	subject := form.Get("subject_token")
	switch {
	case subject == "":
		return nil, errInvalidRequest("subject_token is required")
	case form.Get("subject_token_type") == "":
		return nil, errInvalidRequest("subject_token_type is required")
	case form.Get("subject_token_type") != tokenTypeAccessToken:
		return nil, errInvalidRequest("subject_token_type must be " + tokenTypeAccessToken)
	case form.Has("requested_token_type") && form.Get("requested_token_type") != tokenTypeAccessToken:
		return nil, errInvalidRequest("requested_token_type must be " + tokenTypeAccessToken)
	case form.Has("actor_token") || form.Has("actor_token_type"):
		return nil, errInvalidRequest("actor tokens (delegation) are not supported")
	case form.Has("scope"):
		return nil, newError(http.StatusBadRequest, errCodeInvalidScope, "the upstream token is issued with the scope the user granted; scope cannot be requested")
	case form.Has("resource"):
		return nil, newError(http.StatusBadRequest, errCodeInvalidTarget, "token exchange issues only the upstream provider's token: name it with audience, not resource")
	case form.Has("audience") && form.Get("audience") != s.upstream.Name():
		return nil, newError(http.StatusBadRequest, errCodeInvalidTarget, "audience must name the upstream provider, "+s.upstream.Name())
	}

	rec, kind, active, err := s.lookupToken(ctx, subject)
	if err != nil {
		return nil, err
	}
	// Refused by kind only when it is a refresh token: lookupToken vouches for nothing
	// else but access tokens, in whatever format (opaque or JWT) it reads them.
	if !active || kind == prefixRefresh {
		return nil, errInvalidGrant("subject_token is not an active access token")
	}
	ex.userID, ex.grantID = rec.UserID, rec.GrantID
	if rec.UserID == "" {
		// client_credentials: the client acts for itself; no user, no upstream token.
		return nil, errInvalidGrant("subject_token was issued to a client acting for itself (client_credentials): it has no user's upstream token")
	}
	// RFC 8707 §2: the token is bound to its resources; only a server serving one of
	// them is the token's audience.
	if !slices.ContainsFunc(rec.Resource, func(res string) bool { return slices.Contains(c.Resources, res) }) {
		return nil, newError(http.StatusBadRequest, errCodeInvalidTarget, "subject_token was not issued for a resource this client serves")
	}

	tok, err := s.freshUpstreamToken(ctx, rec.UserID, rec.GrantID)
	if err != nil {
		if transientUpstreamError(err) {
			return nil, upstreamUnavailable{err}
		}
		return nil, loginRequired{err}
	}
	resp := &tokenResponse{
		AccessToken:     tok.AccessToken,
		IssuedTokenType: tokenTypeAccessToken,
		TokenType:       "Bearer",
		// RFC 8693 §2.2.1 wants scope when it differs from what was requested, and
		// nothing was: it is the upstream's, as the upstream reported it, when it did.
		Scope: tok.Scope,
	}
	if !tok.Expiry.IsZero() {
		resp.ExpiresIn = max(int64(tok.Expiry.Sub(s.now()).Seconds()), 1)
	}
	return resp, nil
}

// upstreamUnavailable is a failure to reach the upstream provider or our store: the
// caller retries later, the user keeps the session.
type upstreamUnavailable struct{ cause error }

func (e upstreamUnavailable) Error() string { return "upstream token: " + e.cause.Error() }
func (e upstreamUnavailable) Unwrap() []error {
	return []error{errUnavailable, e.cause}
}

// transientUpstreamError tells an outage (store down, upstream unreachable or
// answering 5xx, a deadline) from an upstream authorization that is gone (no token
// stored, refresh refused, a token we cannot decrypt), which needs a new login.
func transientUpstreamError(err error) bool {
	if errors.Is(err, upstream.ErrNoRefresh) || errors.Is(err, store.ErrNotFound) {
		return false
	}
	var netErr net.Error
	var re *oauth2.RetrieveError
	switch {
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return true
	case errors.As(err, &re):
		return re.Response != nil && re.Response.StatusCode >= 500
	case errors.As(err, &netErr):
		return true
	}
	return false
}

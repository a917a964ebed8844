package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// upstreamTimeout bounds one call to the upstream provider (code exchange, refresh).
const upstreamTimeout = 30 * time.Second

// upstreamErrorsPassedOn are the upstream error codes the MCP client can act on; any
// other upstream error is our configuration's problem, not the client's, and is
// reported as server_error.
var upstreamErrorsPassedOn = []string{
	errCodeAccessDenied, errCodeTemporarilyUnavailable, "login_required",
	"consent_required", "interaction_required", "account_selection_required",
}

// handleCallback is where the upstream provider sends the user back. It redeems the
// upstream state once, checks the browser is the one that started, exchanges the
// upstream code, applies the access rules (who may log in, which restricted scopes
// they get), keeps the upstream tokens for the user, and answers the MCP client with
// our own code.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	if !s.allowMethods(w, r, http.MethodGet) {
		return
	}
	q := r.URL.Query()
	p, ok := s.takePending(w, r, q.Get("state"))
	if !ok {
		return
	}
	if !s.callbackApproval(w, r, p.ClientID) {
		return
	}
	if p.Device != nil {
		s.deviceCallback(w, r, p)
		return
	}
	if upErr := q.Get("error"); upErr != "" {
		s.redirectError(w, r, p.RedirectURI, p.State, upstreamError(upErr))
		return
	}
	code := q.Get("code")
	if code == "" {
		s.redirectError(w, r, p.RedirectURI, p.State, newError(500, errCodeServerError, "the upstream provider returned no code"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), upstreamTimeout)
	defer cancel()
	tok, id, err := s.upstream.Exchange(ctx, code, upstream.AuthParams{Verifier: p.UpstreamVerifier, Nonce: p.Nonce})
	if err == nil && (id == nil || id.Subject == "") {
		err = fmt.Errorf("%w: no subject", upstream.ErrIdentity)
	}
	if err != nil {
		s.log.WarnContext(r.Context(), "upstream code exchange failed", "client_id", p.ClientID, "err", err)
		s.redirectError(w, r, p.RedirectURI, p.State, exchangeError(err))
		return
	}
	scope, ok, _ := s.applyAccessPolicy(w, r, p, tok, id, nil)
	if !ok {
		return
	}
	p.Scope = scope
	ourCode, err := s.issueCode(r.Context(), p, tok, id)
	if err != nil {
		s.log.ErrorContext(r.Context(), "issue authorization code", "client_id", p.ClientID, "err", err)
		s.redirectError(w, r, p.RedirectURI, p.State, asAuthorizeError(err))
		return
	}
	s.setUserHint(w, id.Subject)
	s.redirectToClient(w, r, p.RedirectURI, p.State, url.Values{"code": {ourCode}})
}

// takePending redeems the upstream state and checks the browser binding. Every failure
// is an error page: without a valid pending record we do not know (or cannot trust)
// where the client wants to be sent.
func (s *Server) takePending(w http.ResponseWriter, r *http.Request, state string) (store.PendingAuthorization, bool) {
	if state == "" {
		s.renderError(w, r, http.StatusBadRequest, "The sign-in response has no state.")
		return store.PendingAuthorization{}, false
	}
	p, err := s.store.TakePending(r.Context(), s.keys.hash(labelState, state))
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.renderError(w, r, http.StatusBadRequest, "This sign-in has expired or was already used. Please start again from the application.")
		return p, false
	case err != nil:
		s.renderStoreError(w, r, err)
		return p, false
	case !p.ExpiresAt.IsZero() && !s.now().Before(p.ExpiresAt):
		s.renderError(w, r, http.StatusBadRequest, "This sign-in has expired. Please start again from the application.")
		return p, false
	}
	// RFC 9700 §4.7.1: bind the state to the user agent, so a victim cannot be made to
	// complete a login that an attacker started (the pending record is spent either way).
	binding, ok := s.readFlowCookie(r)
	if !ok || !equalHash(s.keys.hash(labelBrowser, binding), p.BrowserBinding) {
		s.renderError(w, r, http.StatusBadRequest, "This sign-in was started in another browser. Please start again from the application.")
		return p, false
	}
	return p, true
}

func upstreamError(code string) *oauthError {
	for _, c := range upstreamErrorsPassedOn {
		if c == code {
			return newError(400, c, "the upstream provider answered "+c)
		}
	}
	return newError(500, errCodeServerError, "the upstream provider refused the request")
}

func exchangeError(err error) *oauthError {
	if errors.Is(err, context.DeadlineExceeded) {
		return newError(503, errCodeTemporarilyUnavailable, "the upstream provider did not answer in time")
	}
	return newError(500, errCodeServerError, "the upstream login could not be completed")
}

// issueCode keeps the user's upstream tokens and stores our authorization code, bound
// to everything the token request must match (RFC 6749 §4.1.3, RFC 7636 §4.6, RFC 8707).
// Both writes go to the store together (store.SaveLogin: one round trip on Redis).
//
// The upstream token keeps the upstream scopes it covers, and the code only those of
// the requested scopes whose upstream scopes it covers (stepup.go).
func (s *Server) issueCode(ctx context.Context, p store.PendingAuthorization, tok *upstream.Token, id *upstream.Identity) (string, error) {
	if tok != nil {
		withScope := *tok
		granted := s.grantedUpstreamScopes(ctx, p, tok, id.Subject)
		withScope.Scope = joinScope(granted)
		tok = &withScope
		if covered := s.coveredScopes(splitScope(p.Scope), granted); len(covered) < len(splitScope(p.Scope)) {
			s.log.InfoContext(ctx, "the upstream token lacks upstream scopes of requested scopes; they are not granted",
				"client_id", p.ClientID, "requested", p.Scope, "granted", joinScope(covered), "upstream_scope", withScope.Scope)
			p.Scope = joinScope(covered)
		}
	}
	up, err := s.sealUpstreamToken(ctx, id.Subject, tok)
	if err != nil {
		return "", err
	}
	now := s.now()
	grantID := newGrantID()
	code := mintToken(prefixCode, grantID)
	c := store.AuthorizationCode{
		ClientID:            p.ClientID,
		RedirectURI:         p.RedirectURI,
		Scope:               p.Scope,
		CodeChallenge:       p.CodeChallenge,
		CodeChallengeMethod: p.CodeChallengeMethod,
		Resource:            p.Resource,
		UserID:              id.Subject,
		AuthTime:            now,
		ExpiresAt:           now.Add(s.opts.CodeTTL),
	}
	l := store.Login{UserID: id.Subject, Upstream: up, UpstreamTTL: s.opts.ExternalTokenTTL,
		GrantID: grantID, CodeHash: s.keys.hash(labelToken, code), Code: c}
	if err := store.SaveLogin(ctx, s.store, l); err != nil {
		return "", fmt.Errorf("save upstream token and code: %w", err)
	}
	return code, nil
}

// saveUpstreamToken seals the user's upstream token and stores it.
func (s *Server) saveUpstreamToken(ctx context.Context, userID string, tok *upstream.Token) error {
	rec, err := s.sealUpstreamToken(ctx, userID, tok)
	if err != nil {
		return err
	}
	if err := s.store.PutUpstreamToken(ctx, userID, rec, s.opts.ExternalTokenTTL); err != nil {
		return fmt.Errorf("put upstream token: %w", err)
	}
	return nil
}

// sealUpstreamToken makes the store record of the user's upstream token. Providers
// such as Google send a refresh token only on the first consent, so a new token
// without one keeps the refresh token we already hold.
func (s *Server) sealUpstreamToken(ctx context.Context, userID string, tok *upstream.Token) (store.UpstreamToken, error) {
	if tok == nil {
		return store.UpstreamToken{}, errors.New("upstream returned no token")
	}
	if tok.RefreshToken == "" {
		if old, err := s.loadUpstreamToken(ctx, userID); err == nil && old.RefreshToken != "" {
			merged := *tok
			merged.RefreshToken = old.RefreshToken
			tok = &merged
		}
	}
	plain, err := json.Marshal(tok)
	if err != nil {
		return store.UpstreamToken{}, err
	}
	sealed, err := s.keys.seal(plain, userID)
	if err != nil {
		return store.UpstreamToken{}, err
	}
	return store.UpstreamToken{Ciphertext: sealed, AccessExpiresAt: tok.Expiry, UpdatedAt: s.now()}, nil
}

// loadUpstreamToken reads and opens the user's upstream token; errUpstreamRelogin
// when the upstream refused it for good.
func (s *Server) loadUpstreamToken(ctx context.Context, userID string) (*upstream.Token, error) {
	tok, _, err := s.readUpstreamToken(ctx, userID)
	return tok, err
}

// readUpstreamToken is loadUpstreamToken with the store record (its UpdatedAt tells
// one refresh from the next).
func (s *Server) readUpstreamToken(ctx context.Context, userID string) (*upstream.Token, store.UpstreamToken, error) {
	rec, err := s.store.GetUpstreamToken(ctx, userID)
	if err != nil {
		return nil, rec, err
	}
	if rec.ReloginRequired {
		return nil, rec, errUpstreamRelogin
	}
	plain, err := s.keys.open(rec.Ciphertext, userID)
	if err != nil {
		return nil, rec, err
	}
	var tok upstream.Token
	if err := json.Unmarshal(plain, &tok); err != nil {
		return nil, rec, fmt.Errorf("upstream token: %w", err)
	}
	return &tok, rec, nil
}

package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// tokenResponse is RFC 6749 §5.1, and RFC 8693 §2.2.1 with IssuedTokenType.
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	TokenType       string `json:"token_type"`
	// ExpiresIn is left out only by token exchange, when the upstream token's
	// lifetime is unknown; our own tokens always have one.
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// handleToken is the token endpoint (RFC 6749 §3.2): form body only, client
// authenticated per its registered method, then one grant.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	servePostJSON(s, w, r, s.token)
}

// servePostJSON is the frame of the endpoints that take a form POST and answer
// JSON (token, device authorization), kept in one place so that they cannot
// drift apart in CORS, method or error handling.
func servePostJSON[T any](s *Server, w http.ResponseWriter, r *http.Request, handle func(http.ResponseWriter, *http.Request) (T, error)) {
	if preflight(w, r) || !s.allowMethods(w, r, http.MethodPost) {
		return
	}
	resp, err := handle(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) (*tokenResponse, error) {
	if err := parseForm(w, r, maxFormBody); err != nil {
		return nil, err
	}
	if r.PostForm.Get("grant_type") == grantTokenExchange {
		// Its own path: every outcome, client authentication included, is logged and
		// counted as an exchange.
		return s.tokenExchange(r)
	}
	if name, ok := singleValues(r.PostForm, "resource"); !ok {
		return nil, errInvalidRequest("parameter " + name + " is repeated")
	}
	reads := s.readTokenRequest(r)
	c, err := s.authenticateClientWith(r, authExact, reads.resolveClient)
	if err != nil {
		return nil, err
	}
	grantType := r.PostForm.Get("grant_type")
	switch grantType {
	case "":
		return nil, errInvalidRequest("grant_type is required")
	case grantAuthCode, grantRefresh, grantClientCredentials:
	case grantDeviceCode:
		if !s.opts.DeviceAuthorization.Enabled {
			return nil, newError(400, errCodeUnsupportedGrantType, "the device authorization grant is not enabled on this server")
		}
	default:
		return nil, newError(400, errCodeUnsupportedGrantType, "grant_type must be authorization_code, refresh_token, client_credentials or "+grantTokenExchange)
	}
	if !c.allowsGrant(grantType) {
		return nil, newError(400, errCodeUnauthorizedClient, "the client may not use this grant type")
	}
	var resp *tokenResponse
	switch grantType {
	case grantAuthCode:
		resp, err = s.exchangeCode(r, c, reads)
	case grantClientCredentials:
		resp, err = s.clientCredentials(r, c)
	case grantDeviceCode:
		resp, err = s.redeemDeviceCode(r, c, reads)
	default:
		resp, err = s.refresh(r, c, reads)
	}
	if err == nil {
		if grantType == grantDeviceCode {
			grantType = "device_code" // a label, not a URN
		}
		s.metrics.tokenIssued(grantType)
	}
	return resp, err
}

// tokenReads are a token request's store reads: its client, and the code or refresh
// token it presents. For a client kept in the store they are made together, before the
// client is authenticated, in one round trip where the store can
// (store.TokenRequestReader): with the grant's script that makes a token request two
// round trips, not three. Reading first decides nothing; every check runs as before,
// on the records read.
type tokenReads struct {
	s       *Server
	keys    store.TokenRequestKeys // of the request's own code or refresh_token
	records store.TokenRequestRecords
	done    bool
}

func (s *Server) readTokenRequest(r *http.Request) *tokenReads {
	t := &tokenReads{s: s}
	cred, err := readCredentials(r)
	if err != nil || !s.storedClientID(r.Context(), cred.clientID) {
		return t
	}
	t.keys.ClientID = cred.clientID
	form := r.PostForm
	switch form.Get("grant_type") {
	case grantAuthCode:
		code := form.Get("code")
		if t.keys.GrantID, _ = parseToken(prefixCode, code); t.keys.GrantID != "" {
			t.keys.CodeHash = s.keys.hash(labelToken, code)
		}
	case grantRefresh:
		rt := form.Get("refresh_token")
		if t.keys.GrantID, _ = parseToken(prefixRefresh, rt); t.keys.GrantID != "" {
			t.keys.RefreshHash = s.keys.hash(labelToken, rt)
		}
	case grantDeviceCode:
		// The approval of a device code is a code under its hash (deviceApproval).
		dc := form.Get("device_code")
		if t.keys.GrantID, _ = parseToken(prefixDevice, dc); t.keys.GrantID != "" {
			t.keys.CodeHash = s.keys.hash(labelToken, dc)
		}
	}
	if t.keys.GrantID == "" {
		return t // nothing to read alongside the client: the usual calls
	}
	t.records, t.done = store.ReadTokenRequest(r.Context(), s.store, t.keys), true
	return t
}

// resolveClient is Server.resolveClient, answered from the reads when they hold id.
func (t *tokenReads) resolveClient(ctx context.Context, id string) (*client, error) {
	if !t.done || id != t.keys.ClientID {
		return t.s.resolveClient(ctx, id)
	}
	return t.s.resolveClientWith(ctx, id, func(context.Context, string) (store.Client, error) {
		return t.records.Client, t.records.ClientErr
	})
}

// code returns the hash of the request's code (of grantID) and the code's record.
func (t *tokenReads) code(ctx context.Context, grantID, code string) (string, store.AuthorizationCode, error) {
	if t.done && t.keys.CodeHash != "" && t.keys.GrantID == grantID {
		return t.keys.CodeHash, t.records.Code, t.records.CodeErr
	}
	h := t.s.keys.hash(labelToken, code)
	ac, err := t.s.store.PeekCode(ctx, grantID, h)
	return h, ac, err
}

// refreshToken returns the hash of the request's refresh token rt (of grantID) and
// its record.
func (t *tokenReads) refreshToken(ctx context.Context, grantID, rt string) (string, store.Token, error) {
	if t.done && t.keys.RefreshHash != "" && t.keys.GrantID == grantID {
		return t.keys.RefreshHash, t.records.Refresh, t.records.RefreshErr
	}
	h := t.s.keys.hash(labelToken, rt)
	tok, err := t.s.store.GetRefreshToken(ctx, grantID, h)
	return h, tok, err
}

// exchangeCode is the authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.6).
func (s *Server) exchangeCode(r *http.Request, c *client, reads *tokenReads) (*tokenResponse, error) {
	ctx, form := r.Context(), r.PostForm
	code := form.Get("code")
	if code == "" {
		return nil, errInvalidRequest("code is required")
	}
	grantID, ok := parseToken(prefixCode, code)
	if !ok {
		return nil, errInvalidGrant("the authorization code is invalid or expired")
	}
	codeHash, ac, err := reads.code(ctx, grantID, code)
	if err != nil {
		return nil, s.codeError(ctx, grantID, err)
	}
	if err := s.checkCode(ac, c, form.Get("redirect_uri"), form.Get("code_verifier")); err != nil {
		return nil, err
	}
	resources, err := narrowResources(form["resource"], ac.Resource)
	if err != nil {
		return nil, err
	}
	return s.redeemCode(ctx, c, grantID, codeHash, ac, resources, s.now())
}

// redeemCode opens the grant of a checked authorization code, or of an approved
// device code, and issues its first tokens. The two grants share it so that they
// cannot drift apart in what a grant holds or in how a failed redemption (a
// replayed code, say) is answered.
func (s *Server) redeemCode(ctx context.Context, c *client, grantID, codeHash string, ac store.AuthorizationCode, resources []string, now time.Time) (*tokenResponse, error) {
	g := store.Grant{
		ID: grantID, ClientID: c.ID, UserID: ac.UserID, Scope: ac.Scope, Resource: ac.Resource,
		AuthTime: ac.AuthTime, ExpiresAt: now.Add(s.opts.RefreshTokenTTL),
	}
	access, refresh, pair, err := s.newTokens(c, g, ac.Scope, resources, now)
	if err != nil {
		return nil, err
	}
	pair.ClientUse = s.clientUse(c, now)
	if err := s.store.RedeemCode(ctx, grantID, codeHash, g, pair); err != nil {
		return nil, s.codeError(ctx, grantID, err)
	}
	return s.tokenResponse(access, refresh, pair.Access, now), nil
}

// checkCode verifies the code was issued to this client for this redirect URI, and the
// PKCE verifier.
func (s *Server) checkCode(ac store.AuthorizationCode, c *client, redirectURI, verifier string) error {
	// RFC 6749 §4.1.3: "ensure that the authorization code was issued to the
	// authenticated confidential client, or if the client is public, ensure that the
	// code was issued to client_id in the request".
	if ac.ClientID != c.ID {
		return errInvalidGrant("the authorization code was issued to another client")
	}
	if !ac.ExpiresAt.IsZero() && !s.now().Before(ac.ExpiresAt) {
		return errInvalidGrant("the authorization code is invalid or expired")
	}
	// RFC 6749 §4.1.3: redirect_uri "REQUIRED, if the redirect_uri parameter was included
	// in the authorization request ... and their values MUST be identical." We always
	// require it at the authorization endpoint, so always here.
	if redirectURI == "" || redirectURI != ac.RedirectURI {
		return errInvalidGrant("redirect_uri does not match the authorization request")
	}
	// RFC 7636 §4.6: recompute the challenge from the verifier and compare.
	if !validVerifier(verifier) {
		return errInvalidGrant("code_verifier is missing or malformed")
	}
	if !pkceMatches(ac.CodeChallengeMethod, ac.CodeChallenge, verifier) {
		return errInvalidGrant("code_verifier does not match the code_challenge")
	}
	return nil
}

// pkceMatches compares in constant time, so the comparison leaks nothing about the
// stored challenge.
func pkceMatches(method, challenge, verifier string) bool {
	computed := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		computed = base64.RawURLEncoding.EncodeToString(sum[:])
	} else if method != "plain" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(computed), []byte(challenge)) == 1
}

// codeError maps a store answer about a code. A second redemption means the code
// leaked: OAuth 2.1 §4.1.3 says the server "SHOULD revoke all tokens previously issued
// based on that authorization code", so we revoke the grant before refusing.
func (s *Server) codeError(ctx context.Context, grantID string, err error) error {
	switch {
	case errors.Is(err, store.ErrCodeReused):
		if rerr := s.store.RevokeGrant(ctx, grantID); rerr != nil {
			s.log.ErrorContext(ctx, "revoke grant after code replay", "grant", grantID, "err", rerr)
		}
		s.log.WarnContext(ctx, "authorization code replayed; grant revoked", "grant", grantID)
		return errInvalidGrant("the authorization code is invalid or expired")
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrGrantRevoked):
		return errInvalidGrant("the authorization code is invalid or expired")
	}
	return err
}

// refresh is the refresh_token grant (RFC 6749 §6) with rotation (OAuth 2.1 §4.3.1)
// and the reuse grace window (Options.RefreshReuseWindow).
func (s *Server) refresh(r *http.Request, c *client, reads *tokenReads) (*tokenResponse, error) {
	ctx, form := r.Context(), r.PostForm
	old := form.Get("refresh_token")
	if old == "" {
		return nil, errInvalidRequest("refresh_token is required")
	}
	grantID, ok := parseToken(prefixRefresh, old)
	if !ok {
		return nil, errInvalidGrant("the refresh token is invalid or expired")
	}
	oldHash, rt, err := reads.refreshToken(ctx, grantID, old)
	if errors.Is(err, store.ErrRefreshReused) {
		// Rotated before. The read decides nothing: the store settles the reuse in one
		// atomic step, returning the successor kept for the window to the same client,
		// or revoking the grant.
		prior, err := s.store.RotateRefreshToken(ctx, grantID, oldHash, store.TokenPair{}, store.Successor{ClientID: c.ID})
		return s.reusedRefresh(ctx, c, grantID, oldHash, prior, err)
	}
	if err != nil {
		return nil, s.refreshError(ctx, grantID, err)
	}
	if rt.ClientID != c.ID {
		return nil, errInvalidGrant("the refresh token was issued to another client")
	}
	now := s.now()
	if !rt.ExpiresAt.IsZero() && !now.Before(rt.ExpiresAt) {
		return nil, errInvalidGrant("the refresh token is invalid or expired")
	}
	// RFC 6749 §6: the requested scope "MUST NOT include any scope not originally
	// granted"; omitted, it is the original scope.
	scope := rt.Scope
	if req := form.Get("scope"); req != "" {
		if !subset(splitScope(req), splitScope(rt.Scope)) {
			return nil, newError(400, errCodeInvalidScope, "the requested scope exceeds the original grant")
		}
		scope = joinScope(splitScope(req))
	}
	resources, err := narrowResources(form["resource"], rt.Resource)
	if err != nil {
		return nil, err
	}
	g := store.Grant{ID: grantID, ClientID: c.ID, UserID: rt.UserID, Scope: rt.Scope, Resource: rt.Resource, ExpiresAt: rt.ExpiresAt}
	access, refresh, pair, err := s.newTokens(c, g, scope, resources, now)
	if err != nil {
		return nil, err
	}
	pair.ClientUse = s.clientUse(c, now)
	succ, err := s.sealSuccessor(c.ID, grantID, oldHash, access, refresh, pair, now)
	if err != nil {
		return nil, err
	}
	prior, err := s.store.RotateRefreshToken(ctx, grantID, oldHash, pair, succ)
	if err != nil || prior != nil {
		// Another request rotated the token between our read and our rotation.
		return s.reusedRefresh(ctx, c, grantID, oldHash, prior, err)
	}
	return s.tokenResponse(access, refresh, pair.Access, now), nil
}

// successorRecord is the token response a rotation issued, kept sealed in the store
// for the reuse window (store.Successor) so that the same client presenting the
// rotated token again gets the same answer.
type successorRecord struct {
	ClientID         string    `json:"client_id"`
	AccessToken      string    `json:"access_token"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshToken     string    `json:"refresh_token,omitempty"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	Scope            string    `json:"scope,omitempty"`
}

// appendJSON appends what json.Marshal makes of r, without its reflection: every
// rotation seals one (reusedRefresh reads it back with json.Unmarshal).
func (r *successorRecord) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"client_id":`...)
	b = appendJSONString(b, r.ClientID)
	b = append(b, `,"access_token":`...)
	b = appendJSONString(b, r.AccessToken)
	b = append(b, `,"access_expires_at":`...)
	if b, err = appendJSONTime(b, r.AccessExpiresAt); err != nil {
		return nil, err
	}
	if r.RefreshToken != "" {
		b = append(b, `,"refresh_token":`...)
		b = appendJSONString(b, r.RefreshToken)
	}
	if !r.RefreshExpiresAt.IsZero() {
		b = append(b, `,"refresh_expires_at":`...)
		if b, err = appendJSONTime(b, r.RefreshExpiresAt); err != nil {
			return nil, err
		}
	}
	if r.Scope != "" {
		b = append(b, `,"scope":`...)
		b = appendJSONString(b, r.Scope)
	}
	return append(b, '}'), nil
}

// appendJSONTime appends t as time.Time's MarshalJSON does (and its errors).
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, errors.New("successor: time out of range for JSON")
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendJSONString appends s as a JSON string. Plain ASCII, what tokens, client IDs
// and scopes are, is copied as is; anything else goes through json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// sealSuccessor encrypts a rotation's token response for the reuse window, bound to
// the grant and the rotated token; with the window off it keeps nothing.
func (s *Server) sealSuccessor(clientID, grantID, oldHash, access, refresh string, pair store.TokenPair, now time.Time) (store.Successor, error) {
	if s.opts.RefreshReuseWindow <= 0 {
		return store.Successor{}, nil
	}
	rec := successorRecord{
		ClientID: clientID, AccessToken: access, AccessExpiresAt: pair.Access.ExpiresAt,
		RefreshToken: refresh, RefreshExpiresAt: pair.Refresh.ExpiresAt, Scope: pair.Access.Scope,
	}
	plain, err := rec.appendJSON(make([]byte, 0, 64+len(clientID)+len(access)+len(refresh)+len(rec.Scope)+2*len(time.RFC3339Nano)))
	if err != nil {
		return store.Successor{}, err
	}
	sealed, err := s.keys.sealAD(plain, successorAAD(grantID, oldHash))
	if err != nil {
		return store.Successor{}, err
	}
	return store.Successor{ClientID: clientID, Sealed: sealed, Until: now.Add(s.opts.RefreshReuseWindow)}, nil
}

// reusedRefresh answers a rotated refresh token presented again, after the store
// settled it: with the successor kept for the window (prior), or with the store's
// error, ErrRefreshReused when it revoked the grant.
func (s *Server) reusedRefresh(ctx context.Context, c *client, grantID, oldHash string, prior []byte, err error) (*tokenResponse, error) {
	if err != nil {
		return nil, s.refreshError(ctx, grantID, err)
	}
	var rec successorRecord
	plain, err := s.keys.openAD(prior, successorAAD(grantID, oldHash))
	if err == nil {
		err = json.Unmarshal(plain, &rec)
	}
	if err == nil && rec.ClientID != c.ID {
		err = errors.New("sealed for another client")
	}
	if err != nil {
		// Not what this server sealed for this token and client: hand nothing out.
		s.log.ErrorContext(ctx, "refresh successor cannot be used", "grant", grantID, "err", err)
		return nil, errInvalidGrant("the refresh token is invalid or expired")
	}
	s.metrics.refreshReuse.WithLabelValues("grace").Inc()
	s.log.InfoContext(ctx, "rotated refresh token presented again inside the reuse window; same successor returned",
		"grant", grantID, "client", c.ID)
	return &tokenResponse{
		AccessToken:  rec.AccessToken,
		TokenType:    "Bearer",
		ExpiresIn:    max(0, int64(rec.AccessExpiresAt.Sub(s.now())/time.Second)),
		RefreshToken: rec.RefreshToken,
		Scope:        rec.Scope,
	}, nil
}

// refreshError maps a store answer about a refresh token. Reuse of a rotated token
// outside the grace window means one of two parties holds a stolen copy; OAuth 2.1
// §4.3.1 has the server revoke the whole grant, so both stop working and the user logs
// in again. The store revoked it in the same step that found the reuse.
func (s *Server) refreshError(ctx context.Context, grantID string, err error) error {
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		s.metrics.refreshReuse.WithLabelValues("revoked").Inc()
		s.log.WarnContext(ctx, "refresh token reused; grant revoked", "grant", grantID)
		return errInvalidGrant("the refresh token is invalid or expired")
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrGrantRevoked):
		return errInvalidGrant("the refresh token is invalid or expired")
	}
	return err
}

// narrowResources applies RFC 8707 §2.2 at the token endpoint: a requested resource
// must be one the grant covers, and the access token is bound to the requested ones
// (all of the grant's when none are named).
func narrowResources(requested, granted []string) ([]string, error) {
	if len(requested) == 0 {
		return granted, nil
	}
	norm, oe := normalizeResources(requested)
	if oe != nil {
		return nil, oe
	}
	for _, r := range norm {
		if !slices.Contains(granted, r) {
			return nil, newError(400, errCodeInvalidTarget, "the requested resource was not authorized")
		}
	}
	return norm, nil
}

// newTokens mints an access token for scope and resources and, when the client may
// refresh, a refresh token carrying the grant's full scope and resources (RFC 6749 §6:
// a new refresh token's scope is the original one). Refresh tokens expire with the
// grant: rotation never extends how long a login lasts.
//
// A JWT access token's record is keyed by the hash of its jti, an opaque one's by the
// hash of the token: either way introspection is one store read, and the store never
// sees the token.
func (s *Server) newTokens(c *client, g store.Grant, scope string, resources []string, now time.Time) (access, refresh string, pair store.TokenPair, err error) {
	accessExp := now.Add(s.opts.AccessTokenTTL)
	if !g.ExpiresAt.IsZero() && g.ExpiresAt.Before(accessExp) {
		accessExp = g.ExpiresAt
	}
	pair.Access = store.Token{GrantID: g.ID, ClientID: c.ID, UserID: g.UserID, Scope: scope,
		Resource: resources, IssuedAt: now, ExpiresAt: accessExp}
	if s.jwt {
		var jti string
		if access, jti, err = s.mintJWT(pair.Access, now); err != nil {
			// No key active (the file holds only future keys): /readyz says so, and
			// a client retrying later gets its tokens.
			s.log.Error("cannot sign an access token", "err", err)
			return "", "", pair, errUnavailable
		}
		pair.AccessHash = s.keys.hash(labelJTI, jti)
	} else {
		access = mintToken(prefixAccess, g.ID)
		pair.AccessHash = s.keys.hash(labelToken, access)
	}
	if c.allowsGrant(grantRefresh) {
		refresh = mintToken(prefixRefresh, g.ID)
		pair.RefreshHash = s.keys.hash(labelToken, refresh)
		pair.Refresh = store.Token{GrantID: g.ID, ClientID: c.ID, UserID: g.UserID, Scope: g.Scope,
			Resource: g.Resource, IssuedAt: now, ExpiresAt: g.ExpiresAt}
	}
	return access, refresh, pair, nil
}

func (s *Server) tokenResponse(access, refresh string, at store.Token, now time.Time) *tokenResponse {
	return &tokenResponse{
		AccessToken:  access,
		TokenType:    "Bearer",
		ExpiresIn:    int64(at.ExpiresAt.Sub(now) / time.Second),
		RefreshToken: refresh,
		Scope:        at.Scope,
	}
}

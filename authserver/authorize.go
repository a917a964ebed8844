package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// authzRequest is an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, RFC 8707).
type authzRequest struct {
	ClientID            string
	RedirectURI         string
	ResponseType        string
	State               string
	Scope               string
	CodeChallenge       string
	CodeChallengeMethod string
	Resource            []string
	Prompt              string
}

// authzParams are the parameters an authorization request is made of; the consent form
// carries exactly these, and its CSRF token signs them.
var authzParams = []string{"client_id", "redirect_uri", "response_type", "state", "scope",
	"code_challenge", "code_challenge_method", "resource", "prompt"}

func parseAuthzRequest(v url.Values) authzRequest {
	return authzRequest{
		ClientID:            v.Get("client_id"),
		RedirectURI:         v.Get("redirect_uri"),
		ResponseType:        v.Get("response_type"),
		State:               v.Get("state"),
		Scope:               v.Get("scope"),
		CodeChallenge:       v.Get("code_challenge"),
		CodeChallengeMethod: v.Get("code_challenge_method"),
		Resource:            v["resource"],
		Prompt:              v.Get("prompt"),
	}
}

// values is the inverse of parseAuthzRequest; Encode() of it is canonical (sorted keys).
func (a authzRequest) values() url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("client_id", a.ClientID)
	set("redirect_uri", a.RedirectURI)
	set("response_type", a.ResponseType)
	set("state", a.State)
	set("scope", a.Scope)
	set("code_challenge", a.CodeChallenge)
	set("code_challenge_method", a.CodeChallengeMethod)
	set("prompt", a.Prompt)
	for _, r := range a.Resource {
		v.Add("resource", r)
	}
	return v
}

// validatedAuthz is a request that passed every check, with its derived values.
type validatedAuthz struct {
	authzRequest
	client    *client
	scopes    []string
	resources []string
	method    string // PKCE method after the RFC 7636 default
}

// handleAuthorize is the authorization endpoint. RFC 6749 §3.1 requires GET and allows
// POST; both carry the same parameters.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if !s.allowMethods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	params, err := s.authorizeParams(w, r)
	if err != nil {
		s.renderError(w, r, asOAuthError(err).Status, "The authorization request could not be read.")
		return
	}
	req := parseAuthzRequest(params)
	c, ok := s.checkClientAndRedirect(w, r, params, req)
	if !ok {
		return
	}
	v, oe := s.validateAuthz(params, req, c)
	if oe != nil {
		s.redirectError(w, r, req.RedirectURI, req.State, oe)
		return
	}
	// OpenID Connect Core §3.1.2.1: prompt=none forbids any user interaction. We keep
	// no login session of our own, so every authorization is a visit to the upstream
	// provider, which may need the user: we cannot promise a silent login.
	if slices.Contains(strings.Fields(v.Prompt), "none") {
		s.redirectError(w, r, v.RedirectURI, v.State, newError(http.StatusBadRequest, "login_required", "this server cannot authorize without user interaction"))
		return
	}
	if !s.approvalGate(w, r, v) {
		return
	}
	if s.needsConsent(r, v) {
		s.renderConsent(w, r, v)
		return
	}
	s.startUpstream(w, r, v)
}

// authorizeParams returns the request's parameters: the query for GET, the form body
// for POST.
func (s *Server) authorizeParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	if r.Method == http.MethodGet {
		return r.URL.Query(), nil
	}
	if err := parseForm(w, r, maxFormBody); err != nil {
		return nil, err
	}
	return r.PostForm, nil
}

// checkClientAndRedirect validates client_id and redirect_uri, before anything else.
// RFC 6749 §4.1.2.1: "If the request fails due to a missing, invalid, or mismatching
// redirection URI, or if the client identifier is missing or invalid, the authorization
// server SHOULD inform the resource owner of the error and MUST NOT automatically
// redirect the user-agent to the invalid redirection URI." So every failure here is an
// HTML page, never a redirect.
func (s *Server) checkClientAndRedirect(w http.ResponseWriter, r *http.Request, params url.Values, req authzRequest) (*client, bool) {
	if len(params["client_id"]) > 1 || len(params["redirect_uri"]) > 1 {
		s.renderError(w, r, http.StatusBadRequest, "The request repeats client_id or redirect_uri.")
		return nil, false
	}
	if req.ClientID == "" {
		s.renderError(w, r, http.StatusBadRequest, "The request has no client_id.")
		return nil, false
	}
	c, err := s.resolveClient(r.Context(), req.ClientID)
	var refused *clientRefusedError
	switch {
	case errors.As(err, &refused):
		s.renderError(w, r, http.StatusForbidden, refused.Page)
		return nil, false
	case errors.Is(err, errUnknownClient):
		s.renderError(w, r, http.StatusBadRequest, "The application is not registered with this server.")
		return nil, false
	case err != nil:
		s.renderStoreError(w, r, err)
		return nil, false
	}
	// We require redirect_uri even for clients with one registered URI: every MCP
	// client sends it, and the token request must then repeat it (RFC 6749 §4.1.3).
	if req.RedirectURI == "" {
		s.renderError(w, r, http.StatusBadRequest, "The request has no redirect_uri.")
		return nil, false
	}
	if !c.matchRedirectURI(req.RedirectURI) {
		s.renderError(w, r, http.StatusBadRequest, "The redirect_uri is not registered for this application.")
		return nil, false
	}
	return c, true
}

// validateAuthz checks the rest of the request. Its errors go back to the (now
// trusted) redirect URI.
func (s *Server) validateAuthz(params url.Values, req authzRequest, c *client) (*validatedAuthz, *oauthError) {
	if name, ok := singleValues(params, "resource"); !ok {
		return nil, errInvalidRequest("parameter " + name + " is repeated")
	}
	switch {
	case req.ResponseType == "":
		return nil, errInvalidRequest("response_type is required")
	case req.ResponseType != responseTypeCode:
		return nil, newError(400, errCodeUnsupportedResponseType, "only response_type=code is supported")
	case !c.allowsGrant(grantAuthCode):
		return nil, newError(400, errCodeUnauthorizedClient, "the client may not use the authorization code grant")
	}
	method, oe := s.checkChallenge(req.CodeChallenge, req.CodeChallengeMethod)
	if oe != nil {
		return nil, oe
	}
	scopes, oe := s.grantableScope(c, req.Scope)
	if oe != nil {
		return nil, oe
	}
	resources, oe := normalizeResources(req.Resource)
	if oe != nil {
		return nil, oe
	}
	return &validatedAuthz{authzRequest: req, client: c, scopes: scopes, resources: resources, method: method}, nil
}

// checkChallenge enforces PKCE. OAuth 2.1 §4.1.1 requires code_challenge; RFC 7636 §4.3
// makes "plain" the default method when code_challenge_method is absent, and OAuth 2.1
// §7.5.2 permits plain only where S256 is impossible, so plain (explicit or defaulted)
// is refused unless an operator allowed it.
func (s *Server) checkChallenge(challenge, method string) (string, *oauthError) {
	if challenge == "" {
		return "", errInvalidRequest("code_challenge is required (PKCE, RFC 7636)")
	}
	if method == "" {
		method = "plain"
	}
	switch {
	case method == "S256":
		// base64url(SHA-256) is always 43 characters (RFC 7636 §4.2).
		if len(challenge) != 43 || !isBase64URL(challenge) {
			return "", errInvalidRequest("code_challenge is not a base64url SHA-256 value")
		}
	case method == "plain" && s.opts.AllowPKCEPlain:
		if !validVerifier(challenge) {
			return "", errInvalidRequest("code_challenge must be 43 to 128 unreserved characters")
		}
	default:
		return "", errInvalidRequest("code_challenge_method must be S256")
	}
	return method, nil
}

// validVerifier: RFC 7636 §4.1, code-verifier = 43*128unreserved.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return true
}

// needsConsent: the MCP specification's confused-deputy rule. We talk to the upstream
// with one client ID on behalf of every MCP client, so a user must approve each client
// that is not trusted before we forward them upstream. An approval the browser
// remembers counts, unless the client asks for the page again (prompt=consent).
func (s *Server) needsConsent(r *http.Request, v *validatedAuthz) bool {
	if v.client.Trusted {
		return false
	}
	if slices.Contains(strings.Fields(v.Prompt), "consent") {
		return true
	}
	return !s.consentRemembered(r, v.client.ID, v.scopes)
}

// startUpstream records the pending authorization under a fresh one-time state and
// sends the browser to the upstream provider. The state is created only now, after
// consent, as the MCP security guidance asks.
func (s *Server) startUpstream(w http.ResponseWriter, r *http.Request, v *validatedAuthz) {
	state := randomString(secretBytes)
	params := upstream.NewAuthParams() // PKCE verifier and OIDC nonce, kept server-side
	var stepUpUser string
	params.Scopes, stepUpUser = s.upstreamScopesFor(r, v.scopes)
	binding := s.flowCookie(w, r)
	p := store.PendingAuthorization{
		ClientID:            v.client.ID,
		RedirectURI:         v.RedirectURI,
		State:               v.State,
		Scope:               joinScope(v.scopes),
		CodeChallenge:       v.CodeChallenge,
		CodeChallengeMethod: v.method,
		Resource:            v.resources,
		UpstreamVerifier:    params.Verifier,
		Nonce:               params.Nonce,
		UpstreamScope:       joinScope(params.Scopes),
		StepUpUser:          stepUpUser,
		BrowserBinding:      s.keys.hash(labelBrowser, binding),
		ExpiresAt:           s.now().Add(s.opts.PendingTTL),
	}
	if err := s.store.SavePending(r.Context(), s.keys.hash(labelState, state), p); err != nil {
		s.log.ErrorContext(r.Context(), "save pending authorization", "err", err)
		s.redirectError(w, r, v.RedirectURI, v.State, asAuthorizeError(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.upstream.AuthCodeURL(state, params), http.StatusFound)
}

// asAuthorizeError maps an internal failure to the error a client can be redirected
// with (RFC 6749 §4.1.2.1 defines server_error and temporarily_unavailable there).
func asAuthorizeError(err error) *oauthError {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return errUnavailable
	}
	return newError(500, errCodeServerError, "internal error")
}

// redirectError sends an error to the client's (validated) redirect URI with state and,
// per RFC 9207 §2, iss.
//
// A login without a redirect URI (a device's, RFC 8628) gets an error page instead.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, oe *oauthError) {
	if redirectURI == "" {
		s.renderError(w, r, oe.Status, "The sign-in could not be completed: "+safeDescription(oe.Description)+".")
		return
	}
	q := url.Values{"error": {oe.Code}}
	if oe.Description != "" {
		q.Set("error_description", safeDescription(oe.Description))
	}
	s.redirectToClient(w, r, redirectURI, state, q)
}

// redirectToClient is every authorization response: the parameters, the client's
// state, and iss (RFC 9207 §2: "the authorization server MUST include the iss parameter
// in ... responses, including error responses"). RFC 6749 §3.1.2 keeps the redirect
// URI's own query component.
func (s *Server) redirectToClient(w http.ResponseWriter, r *http.Request, redirectURI, state string, params url.Values) {
	u, err := s.clientRedirectURL(redirectURI, state, params)
	if err != nil { // validated before; cannot happen
		s.renderError(w, r, http.StatusBadRequest, "The redirect_uri is invalid.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusFound)
}

// clientRedirectURL builds the authorization response URL redirectToClient sends.
func (s *Server) clientRedirectURL(redirectURI, state string, params url.Values) (string, error) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return "", err
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.issuer)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

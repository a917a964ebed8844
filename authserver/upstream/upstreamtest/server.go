// Package upstreamtest is an in-process fake upstream identity provider for tests: an
// OpenID Connect issuer (which is also a plain OAuth 2.0 server) on an httptest server.
//
// It is honest where tests need it to be: clients authenticate; codes are single-use,
// short-lived and bound to their redirect_uri and PKCE challenge; refresh tokens rotate;
// access tokens expire;
// ID tokens are ES256-signed with the nonce of the authorization request; errors are the
// RFC 6749 JSON with the right status. It is lenient where a real IdP would need a user:
// /authorize logs in the configured user at once and redirects back.
//
//	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
//	srv.SetUser(upstreamtest.User{Subject: "alice", Email: "alice@example.com"})
//	p, err := upstream.New(ctx, srv.OIDCConfig("http://127.0.0.1:8080/oauth/callback"))
//	...
//	cb := srv.Authorize(t, p.AuthCodeURL(state, params)) // our callback URL, code and state
//	tok, id, err := p.Exchange(ctx, cb.Query().Get("code"), params)
package upstreamtest

import (
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// Endpoint paths, relative to Server.URL.
const (
	PathDiscovery = "/.well-known/openid-configuration"
	PathAuthorize = "/authorize"
	PathToken     = "/token"
	PathUserInfo  = "/userinfo"
	PathJWKS      = "/jwks"
)

// codeTTL is how long an authorization code stays redeemable.
const codeTTL = time.Minute

// User is who the fake IdP logs in. Its fields become standard claims in ID tokens and
// userinfo; Claims adds more (or overrides them), e.g. a numeric "id" or a nested
// "data" object for OAuth 2.0 presets.
type User struct {
	Subject string
	Email   string
	// EmailUnverified sends email_verified=false (the zero value sends true).
	EmailUnverified bool
	Name            string
	Groups          []string
	Claims          map[string]any
}

// DefaultUser is the user a Server logs in unless Options.User or SetUser says else.
var DefaultUser = User{Subject: "user-1", Email: "user1@example.com", Name: "User One"}

// Options configure a Server. The zero value is a well-behaved OIDC issuer.
type Options struct {
	// ClientID and ClientSecret are the one registered client; defaults
	// "upstream-client" and "upstream-secret".
	ClientID, ClientSecret string
	// User is the initial user; default DefaultUser.
	User *User
	// AccessTokenTTL is the access-token lifetime; default one hour.
	AccessTokenTTL time.Duration
	// NoRefreshTokens issues no refresh tokens (like a GitHub OAuth app).
	NoRefreshTokens bool
	// KeepRefreshTokens does not rotate refresh tokens (like Google): the same one
	// works again and is not sent back.
	KeepRefreshTokens bool
	// RequirePKCE refuses authorization requests without a code challenge.
	RequirePKCE bool
	// NoPKCEDiscovery leaves code_challenge_methods_supported out of discovery (PKCE
	// still works when a client sends it).
	NoPKCEDiscovery bool
	// NoUserInfo leaves userinfo_endpoint out of discovery (the endpoint still answers).
	NoUserInfo bool
	// RedirectURIs, when set, are the only redirect_uri values /authorize accepts.
	RedirectURIs []string
	// AuthMethods are the token endpoint client authentication methods accepted and
	// advertised: "client_secret_basic", "client_secret_post"; default both.
	AuthMethods []string
	// IncrementalScopes makes a token cover every scope its user has granted the
	// client so far, not only those of its authorization request, as GitHub does and
	// Google does with include_granted_scopes=true; the token response's scope says
	// so.
	IncrementalScopes bool
}

// Server is a running fake IdP. Its methods are safe for concurrent use.
type Server struct {
	// URL is the server's base URL; Issuer equals it.
	URL, Issuer string
	// ClientID and ClientSecret are the registered client's credentials.
	ClientID, ClientSecret string
	// Full endpoint URLs.
	AuthorizeURL, TokenURL, UserInfoURL, JWKSURL string

	ts          *httptest.Server
	opts        Options
	key, rogue  *ecdsa.PrivateKey
	kid         string
	authMethods []string

	mu            sync.Mutex
	user          User
	deny          bool
	accessTTL     time.Duration
	mutateID      func(map[string]any)
	signWithRogue bool
	tokenDelay    time.Duration
	tokenFailure  int
	codes         map[string]*codeGrant
	refreshTokens map[string]*grant
	accessTokens  map[string]*accessGrant
	lastAuthorize url.Values
	authorizeLog  []url.Values
	grantedScopes map[string][]string // subject → every scope granted (IncrementalScopes)
	userInfoScope string              // the scope of the token last seen at /userinfo

	authorizations, exchanges, refreshes, userInfoCalls, discoveries atomic.Int64
}

type grant struct {
	user  User
	scope string
}

type codeGrant struct {
	grant
	redirectURI, challenge, nonce string
	expires                       time.Time
}

type accessGrant struct {
	user    User
	scope   string
	expires time.Time
}

// NewServer starts a fake IdP that stops when t's test ends.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{
		opts:          opts,
		ClientID:      cmp.Or(opts.ClientID, "upstream-client"),
		ClientSecret:  cmp.Or(opts.ClientSecret, "upstream-secret"),
		accessTTL:     opts.AccessTokenTTL,
		authMethods:   opts.AuthMethods,
		kid:           rand.Text(),
		codes:         map[string]*codeGrant{},
		refreshTokens: map[string]*grant{},
		accessTokens:  map[string]*accessGrant{},
		grantedScopes: map[string][]string{},
	}
	if s.accessTTL <= 0 {
		s.accessTTL = time.Hour
	}
	if len(s.authMethods) == 0 {
		s.authMethods = []string{"client_secret_basic", "client_secret_post"}
	}
	s.SetUser(DefaultUser)
	if opts.User != nil {
		s.SetUser(*opts.User)
	}
	var err error
	if s.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatalf("upstreamtest: generate key: %v", err)
	}
	if s.rogue, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatalf("upstreamtest: generate key: %v", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathDiscovery, s.discovery)
	mux.HandleFunc("GET "+PathJWKS, s.jwks)
	mux.HandleFunc("GET "+PathAuthorize, s.authorize)
	mux.HandleFunc("POST "+PathToken, s.token)
	mux.HandleFunc(PathUserInfo, s.userInfo)
	s.ts = httptest.NewServer(mux)
	t.Cleanup(s.ts.Close)

	s.URL, s.Issuer = s.ts.URL, s.ts.URL
	s.AuthorizeURL = s.URL + PathAuthorize
	s.TokenURL = s.URL + PathToken
	s.UserInfoURL = s.URL + PathUserInfo
	s.JWKSURL = s.URL + PathJWKS
	return s
}

// Client returns an HTTP client for the server (pass it as Config.HTTPClient).
func (s *Server) Client() *http.Client { return s.ts.Client() }

// OIDCConfig returns a Config for this server as an OIDC issuer, redirecting to
// redirectURL.
func (s *Server) OIDCConfig(redirectURL string) upstream.Config {
	return upstream.Config{
		Type:         upstream.TypeOIDC,
		ClientID:     s.ClientID,
		ClientSecret: s.ClientSecret,
		IssuerURL:    s.Issuer,
		RedirectURL:  redirectURL,
		HTTPClient:   s.Client(),
	}
}

// OAuth2Config returns a Config for this server as a plain OAuth 2.0 server, with the
// user id read from userinfo's "sub".
func (s *Server) OAuth2Config(redirectURL string) upstream.Config {
	return upstream.Config{
		Type:             upstream.TypeOAuth2,
		ClientID:         s.ClientID,
		ClientSecret:     s.ClientSecret,
		AuthorizationURL: s.AuthorizeURL,
		TokenURL:         s.TokenURL,
		UserInfoURL:      s.UserInfoURL,
		UserIDField:      "sub",
		RedirectURL:      redirectURL,
		HTTPClient:       s.Client(),
	}
}

// SetUser sets who the next authorization logs in. Codes and tokens already issued
// keep the user they were issued for.
func (s *Server) SetUser(u User) {
	u.Groups = slices.Clone(u.Groups)
	u.Claims = maps.Clone(u.Claims)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = u
}

// SetDeny makes /authorize answer error=access_denied (the user said no) while on.
func (s *Server) SetDeny(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = deny
}

// SetAccessTokenTTL sets the lifetime of access tokens issued from now on.
func (s *Server) SetAccessTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessTTL = d
}

// MutateIDToken makes f edit the claims of every ID token before it is signed, to
// test verification: a wrong "aud" or "nonce", an "exp" in the past. nil stops it.
func (s *Server) MutateIDToken(f func(claims map[string]any)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mutateID = f
}

// SignWithUnknownKey makes ID tokens be signed by a key the JWKS does not publish
// (under the published key's kid) while on.
func (s *Server) SignWithUnknownKey(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signWithRogue = on
}

// SetTokenDelay makes the token endpoint wait d before it answers (0: at once), to
// hold a caller's request in flight. The Exchanges and Refreshes counters count a
// request before the wait.
func (s *Server) SetTokenDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenDelay = d
}

// FailTokenRequests makes the token endpoint answer every request with status (a 5xx,
// say) and error "server_error" while it is not 0, as an upstream outage would. The
// counters still count the requests.
func (s *Server) FailTokenRequests(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFailure = status
}

// ExpireAccessTokens makes every access token issued so far invalid at /userinfo.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.accessTokens)
}

// RevokeRefreshTokens makes every refresh token issued so far fail with
// invalid_grant, as when a user revokes the app upstream.
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.refreshTokens)
}

// ValidAccessToken reports whether tok is a live access token of this server.
func (s *Server) ValidAccessToken(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accessTokens[tok]
	return ok && time.Now().Before(a.expires)
}

// LastAuthorizeRequest returns the query of the latest /authorize request, to assert
// on what a client sent (scopes, code_challenge, extra parameters); nil before any.
func (s *Server) LastAuthorizeRequest() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastAuthorize == nil {
		return nil
	}
	return maps.Clone(s.lastAuthorize)
}

// AuthorizeRequests returns the query of every /authorize request so far, oldest
// first, to assert on what each asked for.
func (s *Server) AuthorizeRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]url.Values, len(s.authorizeLog))
	for i, q := range s.authorizeLog {
		out[i] = maps.Clone(q)
	}
	return out
}

// LastUserInfoScope returns the scope of the access token last presented at
// /userinfo: what the caller's upstream token covers.
func (s *Server) LastUserInfoScope() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userInfoScope
}

// Authorize requests authURL (an authorization URL for this server) without following
// the redirect, and returns where the server redirected: the client's redirect_uri with
// code and state, or error. It fails the test if the answer is not a redirect.
func (s *Server) Authorize(t testing.TB, authURL string) *url.URL {
	t.Helper()
	c := *s.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatalf("upstreamtest: authorize: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("upstreamtest: authorize answered %s, not a redirect", resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("upstreamtest: authorize redirect: %v", err)
	}
	return loc
}

// Authorizations counts /authorize requests. Like every counter here it counts
// requests received, whatever their outcome.
func (s *Server) Authorizations() int { return int(s.authorizations.Load()) }

// Exchanges counts token requests with grant_type=authorization_code.
func (s *Server) Exchanges() int { return int(s.exchanges.Load()) }

// Refreshes counts token requests with grant_type=refresh_token.
func (s *Server) Refreshes() int { return int(s.refreshes.Load()) }

// UserInfoCalls counts /userinfo requests.
func (s *Server) UserInfoCalls() int { return int(s.userInfoCalls.Load()) }

// Discoveries counts discovery document requests.
func (s *Server) Discoveries() int { return int(s.discoveries.Load()) }

func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	s.discoveries.Add(1)
	doc := map[string]any{
		"issuer":                                         s.Issuer,
		"authorization_endpoint":                         s.AuthorizeURL,
		"token_endpoint":                                 s.TokenURL,
		"jwks_uri":                                       s.JWKSURL,
		"response_types_supported":                       []string{"code"},
		"subject_types_supported":                        []string{"public"},
		"id_token_signing_alg_values_supported":          []string{"ES256"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"scopes_supported":                               []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported":          s.authMethods,
		"authorization_response_iss_parameter_supported": true,
	}
	if !s.opts.NoPKCEDiscovery {
		doc["code_challenge_methods_supported"] = []string{"S256"}
	}
	if !s.opts.NoUserInfo {
		doc["userinfo_endpoint"] = s.UserInfoURL
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &s.key.PublicKey, KeyID: s.kid, Algorithm: string(jose.ES256), Use: "sig",
	}}})
}

// authorize logs the current user in at once. Errors about the client or redirect_uri
// are shown to the "user" (a 400 page), never redirected: RFC 6749 §4.1.2.1 forbids
// redirecting to an unverified URI.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	s.authorizations.Add(1)
	q := r.URL.Query()
	s.mu.Lock()
	s.lastAuthorize = maps.Clone(q)
	s.authorizeLog = append(s.authorizeLog, maps.Clone(q))
	user, deny := s.user, s.deny
	s.mu.Unlock()

	if q.Get("client_id") != s.ClientID {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	redirectURI := q.Get("redirect_uri")
	back, err := url.Parse(redirectURI)
	if err != nil || !back.IsAbs() || back.Fragment != "" {
		http.Error(w, "missing or invalid redirect_uri", http.StatusBadRequest)
		return
	}
	if len(s.opts.RedirectURIs) > 0 && !slices.Contains(s.opts.RedirectURIs, redirectURI) {
		http.Error(w, "redirect_uri is not registered", http.StatusBadRequest)
		return
	}
	redirect := func(params map[string]string) {
		v := back.Query() // RFC 6749 §3.1.2: keep the URI's own query
		for k, val := range params {
			v.Set(k, val)
		}
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		v.Set("iss", s.Issuer) // RFC 9207
		u := *back
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, desc string) {
		redirect(map[string]string{"error": code, "error_description": desc})
	}

	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code")
	case challenge != "" && method != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
	case challenge == "" && s.opts.RequirePKCE:
		fail("invalid_request", "code_challenge required")
	case deny:
		fail("access_denied", "the user denied the request")
	default:
		code := rand.Text()
		s.mu.Lock()
		scope := q.Get("scope")
		if s.opts.IncrementalScopes {
			all := s.grantedScopes[user.Subject]
			for _, sc := range strings.Fields(scope) {
				if !slices.Contains(all, sc) {
					all = append(all, sc)
				}
			}
			s.grantedScopes[user.Subject] = all
			scope = strings.Join(all, " ")
		}
		s.codes[code] = &codeGrant{
			grant:       grant{user: user, scope: scope},
			redirectURI: redirectURI,
			challenge:   challenge,
			nonce:       q.Get("nonce"),
			expires:     time.Now().Add(codeTTL),
		}
		s.mu.Unlock()
		redirect(map[string]string{"code": code})
	}
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "malformed form")
		return
	}
	f := r.PostForm
	switch f.Get("grant_type") {
	case "authorization_code":
		s.exchanges.Add(1)
	case "refresh_token":
		s.refreshes.Add(1)
	}
	s.mu.Lock()
	delay, failure := s.tokenDelay, s.tokenFailure
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if failure != 0 {
		tokenError(w, failure, "server_error", "the fake IdP is failing token requests")
		return
	}
	if status, code, desc := s.authenticateClient(r); code != "" {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="upstreamtest"`)
		}
		tokenError(w, status, code, desc)
		return
	}
	switch f.Get("grant_type") {
	case "authorization_code":
		s.redeemCode(w, f)
	case "refresh_token":
		s.refresh(w, f)
	default:
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// authenticateClient checks client_secret_basic or client_secret_post, as allowed.
func (s *Server) authenticateClient(r *http.Request) (status int, code, desc string) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if r.PostForm.Has("client_secret") {
			return http.StatusBadRequest, "invalid_request", "more than one client authentication method"
		}
		if !slices.Contains(s.authMethods, "client_secret_basic") {
			return http.StatusUnauthorized, "invalid_client", "client_secret_basic not allowed"
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if secret != "" && !slices.Contains(s.authMethods, "client_secret_post") {
			return http.StatusUnauthorized, "invalid_client", "client_secret_post not allowed"
		}
	}
	if id != s.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.ClientSecret)) != 1 {
		return http.StatusUnauthorized, "invalid_client", "client authentication failed"
	}
	return 0, "", ""
}

func (s *Server) redeemCode(w http.ResponseWriter, f url.Values) {
	code := f.Get("code")
	s.mu.Lock()
	g, ok := s.codes[code]
	delete(s.codes, code) // single use, even when the request is refused below
	s.mu.Unlock()
	verifier := f.Get("code_verifier")
	switch {
	case !ok:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown or used code")
	case time.Now().After(g.expires):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "code expired")
	case f.Get("redirect_uri") != g.redirectURI:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
	case g.challenge == "" && verifier != "":
		// OAuth 2.1 §4.1.3: a verifier without a challenge must be refused.
		tokenError(w, http.StatusBadRequest, "invalid_grant", "code_verifier without code_challenge")
	case g.challenge != "" && !pkceMatches(verifier, g.challenge):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
	default:
		s.issue(w, g.grant, g.nonce, "")
	}
}

func (s *Server) refresh(w http.ResponseWriter, f url.Values) {
	rt := f.Get("refresh_token")
	s.mu.Lock()
	g, ok := s.refreshTokens[rt]
	if ok && !s.opts.KeepRefreshTokens {
		delete(s.refreshTokens, rt) // rotation: the old one is spent
	}
	s.mu.Unlock()
	switch {
	case !ok:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or revoked refresh token")
	default:
		keep := ""
		if s.opts.KeepRefreshTokens {
			keep = rt
		}
		s.issue(w, *g, "", keep)
	}
}

// issue answers a token request. keptRefresh is a refresh token that stays valid (no
// rotation): it is then not sent again, as Google does.
func (s *Server) issue(w http.ResponseWriter, g grant, nonce, keptRefresh string) {
	access := rand.Text()
	s.mu.Lock()
	ttl := s.accessTTL
	s.accessTokens[access] = &accessGrant{user: g.user, scope: g.scope, expires: time.Now().Add(ttl)}
	resp := map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   max(1, int(math.Ceil(ttl.Seconds()))),
	}
	if g.scope != "" {
		resp["scope"] = g.scope
	}
	if !s.opts.NoRefreshTokens && keptRefresh == "" {
		rt := rand.Text()
		s.refreshTokens[rt] = &g
		resp["refresh_token"] = rt
	}
	mutate, rogue := s.mutateID, s.signWithRogue
	s.mu.Unlock()

	if slices.Contains(strings.Fields(g.scope), "openid") {
		idt, err := s.idToken(g, nonce, access, mutate, rogue)
		if err != nil {
			tokenError(w, http.StatusInternalServerError, "server_error", err.Error())
			return
		}
		resp["id_token"] = idt
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) idToken(g grant, nonce, access string, mutate func(map[string]any), rogue bool) (string, error) {
	now := time.Now()
	claims := userClaims(g.user)
	maps.Copy(claims, map[string]any{
		"iss":       s.Issuer,
		"aud":       s.ClientID,
		"azp":       s.ClientID,
		"iat":       now.Unix(),
		"auth_time": now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"at_hash":   atHash(access),
	})
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if mutate != nil {
		mutate(claims)
	}
	key := s.key
	if rogue {
		key = s.rogue
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: s.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func (s *Server) userInfo(w http.ResponseWriter, r *http.Request) {
	s.userInfoCalls.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	tok, ok := bearer(r)
	s.mu.Lock()
	a, found := s.accessTokens[tok]
	if found {
		s.userInfoScope = a.scope
	}
	s.mu.Unlock()
	if !ok || !found || time.Now().After(a.expires) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	writeJSON(w, http.StatusOK, userClaims(a.user))
}

// userClaims are the standard claims for u with u.Claims on top.
func userClaims(u User) map[string]any {
	c := map[string]any{"sub": u.Subject}
	if u.Email != "" {
		c["email"] = u.Email
		c["email_verified"] = !u.EmailUnverified
	}
	if u.Name != "" {
		c["name"] = u.Name
	}
	if len(u.Groups) > 0 {
		c["groups"] = u.Groups
	}
	maps.Copy(c, u.Claims)
	return c
}

func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return tok, ok && strings.EqualFold(scheme, "Bearer") && tok != ""
}

func pkceMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return verifier != "" && subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

// atHash is OIDC Core §3.1.3.6: the left half of the access token's SHA-256.
func atHash(access string) string {
	sum := sha256.Sum256([]byte(access))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a write error means the client has gone
}

package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

func TestAuthorizeShowsAnErrorPageAndNeverRedirectsForABadClientOrRedirectURI(t *testing.T) {
	p := newPKCE()
	tests := []struct {
		name   string
		mod    func(q url.Values)
		setup  func(e *env)
		status int
	}{
		{"no client_id", func(q url.Values) { q.Del("client_id") }, nil, 400},
		{"an unknown client_id", func(q url.Values) { q.Set("client_id", "nobody") }, nil, 400},
		{"a repeated client_id", func(q url.Values) { q.Add("client_id", publicClient.ID) }, nil, 400},
		{"no redirect_uri", func(q url.Values) { q.Del("redirect_uri") }, nil, 400},
		{"a repeated redirect_uri", func(q url.Values) { q.Add("redirect_uri", webRedirect) }, nil, 400},
		{"an unregistered redirect_uri", func(q url.Values) { q.Set("redirect_uri", "https://evil.example.com/cb") }, nil, 400},
		{"a redirect_uri with an extra path segment", func(q url.Values) { q.Set("redirect_uri", webRedirect+"/more") }, nil, 400},
		{"a redirect_uri with an added query", func(q url.Values) { q.Set("redirect_uri", webRedirect+"?x=1") }, nil, 400},
		{"a redirect_uri differing in case", func(q url.Values) { q.Set("redirect_uri", "https://APP.example.com/cb") }, nil, 400},
		{"a redirect_uri with a fragment", func(q url.Values) { q.Set("redirect_uri", webRedirect+"#f") }, nil, 400},
		{"an https redirect_uri with another port", func(q url.Values) { q.Set("redirect_uri", "https://app.example.com:8443/cb") }, nil, 400},
		{"a loopback redirect_uri with another path", func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:5555/other") }, nil, 400},
		{"a loopback redirect_uri with another loopback host", func(q url.Values) { q.Set("redirect_uri", "http://localhost:5555/cb") }, nil, 400},
		{"a loopback redirect_uri over https", func(q url.Values) { q.Set("redirect_uri", "https://127.0.0.1:5555/cb") }, nil, 400},
		{"invalid PKCE as well (the client is checked first)", func(q url.Values) {
			q.Set("client_id", "nobody")
			q.Del("code_challenge")
		}, nil, 400},
		{"a client whose registration expired", func(q url.Values) { q.Set("client_id", "mcpc_expired") }, func(e *env) {
			registerStored(e, store.Client{ID: "mcpc_expired", RedirectURIs: []string{webRedirect}, TokenEndpointAuthMethod: AuthMethodNone,
				ExpiresAt: e.clock.Now().Add(time.Minute)})
			e.clock.Advance(2 * time.Minute)
		}, 400},
		{"a store outage while looking up a dynamic client", func(q url.Values) { q.Set("client_id", "mcpc_x") }, func(e *env) {
			e.store.down.Store(true)
		}, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			q := authzQuery(publicClient.ID, webRedirect, p)
			tt.mod(q)
			rec := e.get(pathAuthorize + "?" + q.Encode())
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tt.status, rec.Body.String())
			}
			if loc := rec.Header().Get("Location"); loc != "" {
				t.Fatalf("redirected to %s", loc)
			}
			wantHTMLPage(t, rec)
		})
	}
}

// wantHTMLPage checks the headers every page carries.
func wantHTMLPage(t *testing.T, rec interface{ Header() http.Header }) {
	t.Helper()
	h := rec.Header()
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("page may be framed: CSP %q, XFO %q", h.Get("Content-Security-Policy"), h.Get("X-Frame-Options"))
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
	}
}

// registerStored puts a client straight into the store, as the operator could.
func registerStored(e *env, c store.Client) {
	e.t.Helper()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = e.clock.Now()
	}
	if c.ExpiresAt.IsZero() {
		c.ExpiresAt = e.clock.Now().Add(time.Hour)
	}
	if err := e.store.Store.CreateClient(e.t.Context(), c); err != nil {
		e.t.Fatal(err)
	}
}

func TestAuthorizeRedirectsErrorsToTheClientWithStateAndIss(t *testing.T) {
	tests := []struct {
		name   string
		client string
		mod    func(q url.Values)
		code   string
	}{
		{"no response_type", publicClient.ID, func(q url.Values) { q.Del("response_type") }, "invalid_request"},
		{"the implicit response_type", publicClient.ID, func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"no code_challenge", publicClient.ID, func(q url.Values) { q.Del("code_challenge") }, "invalid_request"},
		{"code_challenge_method plain", publicClient.ID, func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"no code_challenge_method (RFC 7636 defaults to plain)", publicClient.ID, func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"an unknown code_challenge_method", publicClient.ID, func(q url.Values) { q.Set("code_challenge_method", "S512") }, "invalid_request"},
		{"an S256 challenge of the wrong length", publicClient.ID, func(q url.Values) { q.Set("code_challenge", "abc") }, "invalid_request"},
		{"an S256 challenge with bad characters", publicClient.ID, func(q url.Values) { q.Set("code_challenge", strings.Repeat("+", 43)) }, "invalid_request"},
		{"a repeated state", publicClient.ID, func(q url.Values) { q.Add("state", "again") }, "invalid_request"},
		{"a scope the server does not support", publicClient.ID, func(q url.Values) { q.Set("scope", "read admin") }, "invalid_scope"},
		{"a scope the client may not have", scopedClient.ID, func(q url.Values) { q.Set("scope", "write") }, "invalid_scope"},
		{"a relative resource", publicClient.ID, func(q url.Values) { q.Set("resource", "/mcp") }, "invalid_target"},
		{"a resource with a fragment", publicClient.ID, func(q url.Values) { q.Set("resource", "https://mcp.example.com/mcp#x") }, "invalid_target"},
		{"prompt=none (no silent login without a session)", trustedClient.ID, func(q url.Values) { q.Set("prompt", "none") }, "login_required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			q := authzQuery(tt.client, webRedirect, newPKCE())
			tt.mod(q)
			u := location(t, e.get(pathAuthorize+"?"+q.Encode()))
			wantErrorRedirect(t, u, webRedirect, tt.code)
		})
	}
}

// wantErrorRedirect checks an error authorization response (RFC 6749 §4.1.2.1,
// RFC 9207).
func wantErrorRedirect(t *testing.T, u *url.URL, redirectURI, code string) {
	t.Helper()
	got := u.Scheme + "://" + u.Host + u.Path
	if got != redirectURI {
		t.Fatalf("redirected to %s, want %s", u, redirectURI)
	}
	q := u.Query()
	if q.Get("error") != code {
		t.Errorf("error %q, want %q (%s)", q.Get("error"), code, q.Get("error_description"))
	}
	if q.Get("state") != "client-state-123" {
		t.Errorf("state %q", q.Get("state"))
	}
	if q.Get("iss") != testIssuer {
		t.Errorf("iss %q, want %q (RFC 9207)", q.Get("iss"), testIssuer)
	}
	if q.Has("code") {
		t.Error("an error response carries a code")
	}
}

func TestAuthorizeSendsATrustedClientStraightUpstream(t *testing.T) {
	e := newEnv(t)
	rec := e.get(pathAuthorize + "?" + authzQuery(trustedClient.ID, webRedirect, newPKCE()).Encode())
	u := location(t, rec)
	if u.Host != "idp.example.com" || len(u.Query().Get("state")) != randomPartLen {
		t.Fatalf("redirected to %s", u)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", rec.Header().Get("Cache-Control"))
	}
	c := findCookie(rec.Result().Cookies(), "__Host-mcpauth_flow")
	if c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("flow cookie %+v; want Secure, HttpOnly, SameSite=Lax, Path=/", c)
	}
}

func findCookie(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestAuthorizeAcceptsLoopbackRedirectURIsOnAnyPort(t *testing.T) {
	e := newEnv(t)
	for _, uri := range []string{"http://127.0.0.1:51234/cb", "http://127.0.0.1/cb", "http://127.0.0.1:1/cb"} {
		q := authzQuery(trustedClient.ID, uri, newPKCE())
		if u := location(t, e.get(pathAuthorize+"?"+q.Encode())); u.Host != "idp.example.com" {
			t.Errorf("%s: redirected to %s", uri, u)
		}
	}
}

func TestAuthorizeAcceptsPlainPKCEOnlyWhenAllowed(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AllowPKCEPlain = true })
	verifier := randomString(32)
	q := authzQuery(trustedClient.ID, webRedirect, pkce{challenge: verifier})
	q.Set("code_challenge_method", "plain")
	back := e.browser().login(t, q)
	tok := e.exchange(trustedClient.ID, webRedirect, back.Query().Get("code"), pkce{verifier: verifier})
	if tok.AccessToken == "" {
		t.Fatal("no token")
	}
}

func TestAuthorizeAcceptsAPostedRequest(t *testing.T) {
	e := newEnv(t)
	rec := e.postForm(pathAuthorize, authzQuery(trustedClient.ID, webRedirect, newPKCE()))
	if u := location(t, rec); u.Host != "idp.example.com" {
		t.Fatalf("redirected to %s", u)
	}
}

func TestAuthorizeShowsAPageForAnUnreadablePostedRequest(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"a JSON body", func() *http.Request {
			r := httptestRequest(http.MethodPost, pathAuthorize)
			r.Header.Set("Content-Type", "application/json")
			return r
		}(), 400},
		{"an oversized form", formRequest(pathAuthorize, url.Values{"state": {strings.Repeat("s", maxFormBody)}}), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.serve(tt.req)
			if rec.Code != tt.status || rec.Header().Get("Location") != "" {
				t.Fatalf("status %d location %q", rec.Code, rec.Header().Get("Location"))
			}
			wantHTMLPage(t, rec)
		})
	}
}

func TestAuthorizeRefusesOtherMethods(t *testing.T) {
	e := newEnv(t)
	rec := e.serve(httptestRequest(http.MethodPut, pathAuthorize))
	wantOAuthError(t, rec, http.StatusMethodNotAllowed, "invalid_request")
	if rec.Header().Get("Allow") != "GET, POST" {
		t.Errorf("Allow %q", rec.Header().Get("Allow"))
	}
}

func TestAuthorizeGrantsDefaultScopesAndBindsResources(t *testing.T) {
	e := newEnv(t)
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, url.Values{
		"resource": {"HTTPS://MCP.Example.com/mcp", "https://other.example.com/"},
	})
	tok := e.exchange(trustedClient.ID, webRedirect, code, p)
	if tok.Scope != "read" {
		t.Errorf("scope %q, want the default scope", tok.Scope)
	}
	aud := stringList(e.introspect(tok.AccessToken)["aud"])
	if len(aud) != 2 || aud[0] != "https://mcp.example.com/mcp" || aud[1] != "https://other.example.com/" {
		t.Errorf("aud %v; want both resources, scheme and host lower-cased", aud)
	}
}

func TestAuthorizeReportsAStoreOutageToTheClient(t *testing.T) {
	e := newEnv(t)
	e.store.down.Store(true)
	u := location(t, e.get(pathAuthorize+"?"+authzQuery(trustedClient.ID, webRedirect, newPKCE()).Encode()))
	wantErrorRedirect(t, u, webRedirect, "temporarily_unavailable")
}

func TestAuthorizeKeepsTheRedirectURIsQueryAndAPrivateUseScheme(t *testing.T) {
	reg, _ := NewStaticClients(StaticClient{ID: "q", RedirectURIs: []string{"https://app.example.com/cb?tenant=7", nativeRedirect}})
	e := newEnv(t, func(o *Options) { o.Clients = reg })
	q := authzQuery("q", "https://app.example.com/cb?tenant=7", newPKCE())
	q.Del("response_type")
	u := location(t, e.get(pathAuthorize+"?"+q.Encode()))
	if u.Query().Get("tenant") != "7" || u.Query().Get("error") != "invalid_request" {
		t.Errorf("redirect %s; want the URI's own query kept (RFC 6749 §3.1.2)", u)
	}
	q = authzQuery("q", nativeRedirect, newPKCE())
	q.Del("response_type")
	u = location(t, e.get(pathAuthorize+"?"+q.Encode()))
	if u.Scheme != "com.example.app" || u.Query().Get("iss") != testIssuer {
		t.Errorf("redirect %s", u)
	}
}

func httptestRequest(method, path string) *http.Request {
	req, _ := http.NewRequest(method, testIssuer+path, nil)
	return req
}

package authserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/config"
)

func TestTokenEndpointAuthenticatesClientsPerTheirRegisteredMethod(t *testing.T) {
	odd := StaticClient{ID: "odd:id", Secret: "a:b%c d", RedirectURIs: []string{webRedirect}}
	badCode := url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}}
	tests := []struct {
		name   string
		form   url.Values
		basic  []string
		header string // a raw Authorization header
		status int
		code   string
	}{
		{"a public client identified by client_id alone", url.Values{"client_id": {publicClient.ID}}, nil, "", 400, "invalid_grant"},
		{"a confidential client with Basic", nil, []string{confClient.ID, confClient.Secret}, "", 400, "invalid_grant"},
		{"a client_secret_post client with its secret in the body", url.Values{"client_id": {postClient.ID}, "client_secret": {postClient.Secret}}, nil, "", 400, "invalid_grant"},
		{"Basic credentials form-encoded per RFC 6749 §2.3.1", nil, []string{odd.ID, odd.Secret}, "", 400, "invalid_grant"},
		{"no client at all", url.Values{}, nil, "", 401, "invalid_client"},
		{"an unknown client", url.Values{"client_id": {"nobody"}}, nil, "", 401, "invalid_client"},
		{"a confidential client without its secret", url.Values{"client_id": {confClient.ID}}, nil, "", 401, "invalid_client"},
		{"a confidential client with a wrong secret", nil, []string{confClient.ID, "wrong"}, "", 401, "invalid_client"},
		{"a Basic client sending its secret in the body", url.Values{"client_id": {confClient.ID}, "client_secret": {confClient.Secret}}, nil, "", 401, "invalid_client"},
		{"a post client using Basic", nil, []string{postClient.ID, postClient.Secret}, "", 401, "invalid_client"},
		{"a public client sending a secret", url.Values{"client_id": {publicClient.ID}, "client_secret": {"x"}}, nil, "", 401, "invalid_client"},
		{"two authentication methods at once", url.Values{"client_secret": {confClient.Secret}}, []string{confClient.ID, confClient.Secret}, "", 400, "invalid_request"},
		{"a body client_id that contradicts Basic", url.Values{"client_id": {publicClient.ID}}, []string{confClient.ID, confClient.Secret}, "", 401, "invalid_client"},
		{"malformed Basic credentials", url.Values{}, nil, "Basic !!!", 401, "invalid_client"},
		{"Basic credentials without a colon", url.Values{}, nil, "Basic Zm9v", 401, "invalid_client"},
		{"a repeated client_id", url.Values{"client_id": {publicClient.ID, publicClient.ID}}, nil, "", 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			reg, _ := NewStaticClients(publicClient, confClient, postClient, odd)
			e.srv.opts.Clients = reg
			form := url.Values{}
			for k, v := range badCode {
				form[k] = v
			}
			for k, v := range tt.form {
				form[k] = v
			}
			req := httptest.NewRequest(http.MethodPost, testIssuer+pathToken, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic != nil {
				req.SetBasicAuth(url.QueryEscape(tt.basic[0]), url.QueryEscape(tt.basic[1]))
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			rec := e.serve(req)
			wantOAuthError(t, rec, tt.status, tt.code)
			if tt.status == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestTokenEndpointRefusesMalformedRequests(t *testing.T) {
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, testIssuer+pathToken, nil) }, 405, "invalid_request"},
		{"a JSON body", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, testIssuer+pathToken, strings.NewReader(`{"grant_type":"authorization_code"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, 400, "invalid_request"},
		{"a body over 1 MiB", func() *http.Request {
			return formRequest(pathToken, url.Values{"client_id": {publicClient.ID}, "pad": {strings.Repeat("x", maxFormBody)}})
		}, 413, "invalid_request"},
		{"a malformed form body", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, testIssuer+pathToken, strings.NewReader("a=%zz"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, 400, "invalid_request"},
		{"no grant_type", func() *http.Request { return formRequest(pathToken, url.Values{"client_id": {publicClient.ID}}) }, 400, "invalid_request"},
		{"the password grant", func() *http.Request {
			return formRequest(pathToken, url.Values{"client_id": {publicClient.ID}, "grant_type": {"password"}})
		}, 400, "unsupported_grant_type"},
		{"the client_credentials grant by a client not registered for it", func() *http.Request {
			return formRequest(pathToken, url.Values{"client_id": {publicClient.ID}, "grant_type": {"client_credentials"}})
		}, 400, "unauthorized_client"},
		{"the device code grant on a server without it", func() *http.Request {
			return formRequest(pathToken, url.Values{"client_id": {publicClient.ID}, "grant_type": {grantDeviceCode}, "device_code": {"x"}})
		}, 400, "unsupported_grant_type"},
		{"a repeated grant_type", func() *http.Request {
			return formRequest(pathToken, url.Values{"client_id": {publicClient.ID}, "grant_type": {"refresh_token", "authorization_code"}})
		}, 400, "invalid_request"},
		{"a refresh by a client without the refresh_token grant", func() *http.Request {
			return formRequest(pathToken, url.Values{"client_id": {noRefresh.ID}, "grant_type": {"refresh_token"}, "refresh_token": {"x"}})
		}, 400, "unauthorized_client"},
		{"the code in the query string instead of the body", func() *http.Request {
			r := formRequest(pathToken, url.Values{"client_id": {publicClient.ID}, "grant_type": {"authorization_code"}})
			r.URL.RawQuery = "code=" + mintToken(prefixCode, newGrantID())
			return r
		}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.serve(tt.req())
			wantOAuthError(t, rec, tt.status, tt.code)
			if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Pragma") != "no-cache" {
				t.Errorf("Cache-Control %q Pragma %q", rec.Header().Get("Cache-Control"), rec.Header().Get("Pragma"))
			}
			if tt.status == 405 && rec.Header().Get("Allow") != "POST" {
				t.Errorf("Allow %q", rec.Header().Get("Allow"))
			}
		})
	}
}

func formRequest(path string, form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, testIssuer+path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func TestAuthorizationCodeGrantIssuesOpaqueBearerTokens(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AccessTokenFormat = config.AccessTokenOpaque })
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, url.Values{"scope": {"read write"}})
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
		"code_verifier": {p.verifier}, "client_id": {trustedClient.ID}}
	rec := e.postForm(pathToken, form)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Pragma") != "no-cache" {
		t.Errorf("RFC 6749 §5.1 headers missing: %v", rec.Header())
	}
	var tok tokens
	decodeJSON(t, rec.Body, &tok)
	if _, ok := parseToken(prefixAccess, tok.AccessToken); !ok {
		t.Errorf("access token %q", tok.AccessToken)
	}
	if _, ok := parseToken(prefixRefresh, tok.RefreshToken); !ok {
		t.Errorf("refresh token %q", tok.RefreshToken)
	}
	if tok.TokenType != "Bearer" || tok.ExpiresIn != int64(DefaultAccessTokenTTL/time.Second) || tok.Scope != "read write" {
		t.Errorf("response %+v", tok)
	}
}

func TestAuthorizationCodeGrantWorksForConfidentialClients(t *testing.T) {
	e := newEnv(t)
	p := newPKCE()
	code := e.code(confClient.ID, webRedirect, p, nil)
	if tok := e.exchange(confClient.ID, webRedirect, code, p, confClient.ID, confClient.Secret); tok.AccessToken == "" {
		t.Fatal("no access token")
	}
	p = newPKCE()
	code = e.code(postClient.ID, webRedirect, p, nil)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
		"code_verifier": {p.verifier}, "client_id": {postClient.ID}, "client_secret": {postClient.Secret}}
	if rec := e.postForm(pathToken, form); rec.Code != http.StatusOK {
		t.Fatalf("client_secret_post: %d %s", rec.Code, rec.Body.String())
	}
}

func TestAuthorizationCodeGrantRefusesAMismatchedRequest(t *testing.T) {
	tests := []struct {
		name string
		mod  func(e *env, form url.Values)
		code string
	}{
		{"no code", func(_ *env, f url.Values) { f.Del("code") }, "invalid_request"},
		{"a malformed code", func(_ *env, f url.Values) { f.Set("code", "not-a-code") }, "invalid_grant"},
		{"an access token as the code", func(_ *env, f url.Values) { f.Set("code", mintToken(prefixAccess, newGrantID())) }, "invalid_grant"},
		{"an unknown code", func(_ *env, f url.Values) { f.Set("code", mintToken(prefixCode, newGrantID())) }, "invalid_grant"},
		{"a code issued to another client", func(_ *env, f url.Values) { f.Set("client_id", publicClient.ID) }, "invalid_grant"},
		{"no redirect_uri", func(_ *env, f url.Values) { f.Del("redirect_uri") }, "invalid_grant"},
		{"another registered redirect_uri", func(_ *env, f url.Values) { f.Set("redirect_uri", loopbackRedirect) }, "invalid_grant"},
		{"no code_verifier", func(_ *env, f url.Values) { f.Del("code_verifier") }, "invalid_grant"},
		{"a wrong code_verifier", func(_ *env, f url.Values) { f.Set("code_verifier", newPKCE().verifier) }, "invalid_grant"},
		{"the challenge sent as the verifier", func(e *env, f url.Values) { f.Set("code_verifier", f.Get("challenge")) }, "invalid_grant"},
		{"a code_verifier that is too short", func(_ *env, f url.Values) { f.Set("code_verifier", "abc") }, "invalid_grant"},
		{"an expired code", func(e *env, _ url.Values) { e.clock.Advance(DefaultCodeTTL + time.Second) }, "invalid_grant"},
		{"a resource the code does not cover", func(_ *env, f url.Values) { f.Set("resource", "https://other.example.com/mcp") }, "invalid_target"},
		{"a malformed resource", func(_ *env, f url.Values) { f.Set("resource", "mcp") }, "invalid_target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			p := newPKCE()
			code := e.code(trustedClient.ID, webRedirect, p, url.Values{"resource": {"https://mcp.example.com/mcp"}})
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
				"code_verifier": {p.verifier}, "client_id": {trustedClient.ID}, "challenge": {p.challenge}}
			tt.mod(e, form)
			form.Del("challenge")
			wantOAuthError(t, e.postForm(pathToken, form), http.StatusBadRequest, tt.code)
		})
	}
}

func TestAFailedExchangeLeavesTheCodeForItsClient(t *testing.T) {
	e := newEnv(t)
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, nil)
	wrong := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
		"code_verifier": {newPKCE().verifier}, "client_id": {trustedClient.ID}}
	wantOAuthError(t, e.postForm(pathToken, wrong), 400, "invalid_grant")
	e.exchange(trustedClient.ID, webRedirect, code, p)
}

func TestReplayedCodeIsRefusedAndRevokesTheTokensItIssued(t *testing.T) {
	e := newEnv(t)
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, nil)
	first := e.exchange(trustedClient.ID, webRedirect, code, p)
	if e.introspect(first.AccessToken)["active"] != true {
		t.Fatal("fresh token inactive")
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
		"code_verifier": {p.verifier}, "client_id": {trustedClient.ID}}
	wantOAuthError(t, e.postForm(pathToken, form), http.StatusBadRequest, "invalid_grant")
	for name, tok := range map[string]string{"access": first.AccessToken, "refresh": first.RefreshToken} {
		if e.introspect(tok)["active"] != false {
			t.Errorf("%s token still active after the code was replayed", name)
		}
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}, "client_id": {trustedClient.ID}}
	wantOAuthError(t, e.postForm(pathToken, refresh), http.StatusBadRequest, "invalid_grant")
}

func TestClientWithoutTheRefreshGrantGetsNoRefreshToken(t *testing.T) {
	e := newEnv(t)
	p := newPKCE()
	tok := e.exchange(noRefresh.ID, webRedirect, e.code(noRefresh.ID, webRedirect, p, nil), p)
	if tok.AccessToken == "" || tok.RefreshToken != "" {
		t.Fatalf("tokens %+v", tok)
	}
}

// refreshForm is a refresh request by the trusted public client.
func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {trustedClient.ID}}
}

func TestRefreshRotatesAndReuseRevokesTheGrant(t *testing.T) {
	e := newEnv(t)
	first := e.issue()
	rec := e.postForm(pathToken, refreshForm(first.RefreshToken))
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body.String())
	}
	var second tokens
	decodeJSON(t, rec.Body, &second)
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatalf("not rotated: %+v", second)
	}
	if e.introspect(second.AccessToken)["active"] != true {
		t.Fatal("new access token inactive")
	}
	// The old refresh token again: someone holds a stolen copy.
	wantOAuthError(t, e.postForm(pathToken, refreshForm(first.RefreshToken)), http.StatusBadRequest, "invalid_grant")
	for name, tok := range map[string]string{"new access": second.AccessToken, "new refresh": second.RefreshToken, "old access": first.AccessToken} {
		if e.introspect(tok)["active"] != false {
			t.Errorf("%s token still active after refresh token reuse", name)
		}
	}
	wantOAuthError(t, e.postForm(pathToken, refreshForm(second.RefreshToken)), http.StatusBadRequest, "invalid_grant")
}

func TestRefreshMayNarrowButNeverWidenScopeAndResource(t *testing.T) {
	e := newEnv(t)
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, url.Values{"scope": {"read write"}, "resource": {"https://a.example.com/mcp", "https://b.example.com/mcp"}})
	tok := e.exchange(trustedClient.ID, webRedirect, code, p)

	narrow := refreshForm(tok.RefreshToken)
	narrow.Set("scope", "read")
	narrow.Set("resource", "https://A.example.com/mcp")
	rec := e.postForm(pathToken, narrow)
	if rec.Code != http.StatusOK {
		t.Fatalf("narrowing refresh: %d %s", rec.Code, rec.Body.String())
	}
	var next tokens
	decodeJSON(t, rec.Body, &next)
	at := e.introspect(next.AccessToken)
	if at["scope"] != "read" || strings.Join(stringList(at["aud"]), " ") != "https://a.example.com/mcp" {
		t.Errorf("access token scope %v aud %v", at["scope"], at["aud"])
	}
	// RFC 6749 §6: the new refresh token keeps the original scope.
	if rt := e.introspect(next.RefreshToken); rt["scope"] != "read write" || len(stringList(rt["aud"])) != 2 {
		t.Errorf("refresh token scope %v aud %v", rt["scope"], rt["aud"])
	}

	tests := []struct {
		name, param, value, code string
	}{
		{"a scope beyond the grant", "scope", "read write admin", "invalid_scope"},
		{"a resource beyond the grant", "resource", "https://c.example.com/mcp", "invalid_target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := refreshForm(next.RefreshToken)
			f.Set(tt.param, tt.value)
			wantOAuthError(t, e.postForm(pathToken, f), http.StatusBadRequest, tt.code)
		})
	}
}

func TestRefreshIsRefusedForTheWrongClientOrAfterTheGrantExpires(t *testing.T) {
	tests := []struct {
		name string
		form func(e *env, rt string) url.Values
	}{
		{"another client", func(_ *env, rt string) url.Values {
			f := refreshForm(rt)
			f.Set("client_id", publicClient.ID)
			return f
		}},
		{"no refresh_token", func(_ *env, _ string) url.Values { f := refreshForm(""); return f }},
		{"a malformed refresh_token", func(_ *env, _ string) url.Values { return refreshForm("mcp_rt_x") }},
		{"an unknown refresh_token", func(_ *env, _ string) url.Values { return refreshForm(mintToken(prefixRefresh, newGrantID())) }},
		{"an access token as the refresh token", func(e *env, _ string) url.Values { return refreshForm(e.issue().AccessToken) }},
		{"after the grant's lifetime", func(e *env, rt string) url.Values {
			e.clock.Advance(DefaultRefreshTokenTTL + time.Second)
			return refreshForm(rt)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rt := e.issue().RefreshToken
			form := tt.form(e, rt)
			code := "invalid_grant"
			if form.Get("refresh_token") == "" {
				code = "invalid_request"
			}
			wantOAuthError(t, e.postForm(pathToken, form), http.StatusBadRequest, code)
		})
	}
}

func TestRefreshNeverExtendsTheGrant(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	e.clock.Advance(DefaultRefreshTokenTTL - 5*time.Minute)
	rec := e.postForm(pathToken, refreshForm(tok.RefreshToken))
	var next tokens
	decodeJSON(t, rec.Body, &next)
	if next.ExpiresIn != int64((5 * time.Minute).Seconds()) {
		t.Errorf("expires_in %d; an access token must not outlive its grant", next.ExpiresIn)
	}
	if exp := int64(e.introspect(next.RefreshToken)["exp"].(float64)); exp != e.clock.Now().Add(5*time.Minute).Unix() {
		t.Errorf("refresh token exp %d; rotation must keep the grant's horizon", exp)
	}
}

func TestTokenEndpointAnswers503WhenTheStoreIsDown(t *testing.T) {
	e := newEnv(t)
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, nil)
	e.store.down.Store(true)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
		"code_verifier": {p.verifier}, "client_id": {trustedClient.ID}}
	wantOAuthError(t, e.postForm(pathToken, form), http.StatusServiceUnavailable, "temporarily_unavailable")
}

func TestPKCEComparison(t *testing.T) {
	p := newPKCE()
	tests := []struct {
		name                        string
		method, challenge, verifier string
		want                        bool
	}{
		{"S256 with the right verifier", "S256", p.challenge, p.verifier, true},
		{"S256 with another verifier", "S256", p.challenge, newPKCE().verifier, false},
		{"plain with the same value", "plain", p.verifier, p.verifier, true},
		{"plain with another value", "plain", p.verifier, p.challenge, false},
		{"an unknown method", "S512", p.challenge, p.verifier, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pkceMatches(tt.method, tt.challenge, tt.verifier); got != tt.want {
				t.Errorf("pkceMatches = %v", got)
			}
		})
	}
}

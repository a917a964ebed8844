package upstreamtest_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

const redirectURI = "http://127.0.0.1:9/cb?tenant=a"

// authorizeQuery is a valid authorization request for srv; tests edit it.
func authorizeQuery(srv *upstreamtest.Server, verifier string) url.Values {
	q := url.Values{
		"client_id":     {srv.ClientID},
		"redirect_uri":  {redirectURI},
		"response_type": {"code"},
		"scope":         {"openid email"},
		"state":         {"xyz"},
		"nonce":         {"n-0"},
	}
	if verifier != "" {
		sum := sha256.Sum256([]byte(verifier))
		q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		q.Set("code_challenge_method", "S256")
	}
	return q
}

// get requests u without following redirects.
func get(t *testing.T, srv *upstreamtest.Server, u string) *http.Response {
	t.Helper()
	c := *srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// code runs an authorization and returns the code.
func code(t *testing.T, srv *upstreamtest.Server, q url.Values) string {
	t.Helper()
	cb := srv.Authorize(t, srv.AuthorizeURL+"?"+q.Encode())
	c := cb.Query().Get("code")
	if c == "" {
		t.Fatalf("no code in %s", cb)
	}
	return c
}

type tokenResponse struct {
	status int
	header http.Header
	body   map[string]any
}

func (r tokenResponse) str(k string) string { s, _ := r.body[k].(string); return s }

// postToken sends form to the token endpoint with client_secret_basic, or
// client_secret_post when basic is false.
func postToken(t *testing.T, srv *upstreamtest.Server, form url.Values, basic bool) tokenResponse {
	t.Helper()
	form = cloneValues(form)
	if !basic {
		form.Set("client_id", srv.ClientID)
		form.Set("client_secret", srv.ClientSecret)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(srv.ClientID, srv.ClientSecret)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := tokenResponse{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&out.body); err != nil {
		t.Fatalf("token response: %v", err)
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vv := range v {
		out[k] = append([]string(nil), vv...)
	}
	return out
}

func codeForm(c, verifier string) url.Values {
	f := url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}}
	if verifier != "" {
		f.Set("code_verifier", verifier)
	}
	return f
}

func wantError(t *testing.T, r tokenResponse, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("token response %d %v, want %d %s", r.status, r.body, status, code)
	}
}

// jwtClaims decodes a JWT's payload without verifying it (the upstream package's tests
// verify the fake's ID tokens with go-oidc).
func jwtClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAuthorizeRedirectsBackWithCodeStateAndIssuer(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	cb := srv.Authorize(t, srv.AuthorizeURL+"?"+authorizeQuery(srv, "v").Encode())
	q := cb.Query()
	if !strings.HasPrefix(cb.String(), "http://127.0.0.1:9/cb?") || q.Get("tenant") != "a" {
		t.Errorf("redirected to %s, want the redirect_uri with its own query kept", cb)
	}
	if q.Get("code") == "" || q.Get("state") != "xyz" || q.Get("iss") != srv.Issuer {
		t.Errorf("callback query = %v", q)
	}
	if got := srv.LastAuthorizeRequest().Get("nonce"); got != "n-0" {
		t.Errorf("LastAuthorizeRequest nonce = %q", got)
	}
	if srv.Authorizations() != 1 {
		t.Errorf("Authorizations() = %d", srv.Authorizations())
	}
}

func TestAuthorizeErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    upstreamtest.Options
		deny    bool
		edit    func(url.Values)
		status  int    // 400: shown to the user, not redirected
		errCode string // redirected with this error
	}{
		{name: "denied by the user", deny: true, errCode: "access_denied"},
		{name: "unknown client is not redirected", edit: func(q url.Values) { q.Set("client_id", "nope") }, status: 400},
		{name: "missing redirect_uri", edit: func(q url.Values) { q.Del("redirect_uri") }, status: 400},
		{name: "unregistered redirect_uri is not redirected",
			opts: upstreamtest.Options{RedirectURIs: []string{"https://elsewhere.example.com/cb"}}, status: 400},
		{name: "wrong response type", edit: func(q url.Values) { q.Set("response_type", "token") }, errCode: "unsupported_response_type"},
		{name: "plain PKCE", edit: func(q url.Values) { q.Set("code_challenge_method", "plain") }, errCode: "invalid_request"},
		{name: "missing PKCE when required", opts: upstreamtest.Options{RequirePKCE: true},
			edit: func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, errCode: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstreamtest.NewServer(t, tt.opts)
			srv.SetDeny(tt.deny)
			q := authorizeQuery(srv, "v")
			if tt.edit != nil {
				tt.edit(q)
			}
			resp := get(t, srv, srv.AuthorizeURL+"?"+q.Encode())
			if tt.status != 0 {
				if resp.StatusCode != tt.status {
					t.Fatalf("status = %s, want %d", resp.Status, tt.status)
				}
				return
			}
			loc, err := resp.Location()
			if err != nil {
				t.Fatalf("no redirect: %s", resp.Status)
			}
			if loc.Query().Get("error") != tt.errCode || loc.Query().Get("state") != "xyz" || loc.Query().Has("code") {
				t.Errorf("redirected to %s, want error=%s with the state and no code", loc, tt.errCode)
			}
		})
	}
}

func TestCodeGrant(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{User: &upstreamtest.User{
		Subject: "u-9", Email: "u9@example.com", Groups: []string{"g"},
	}})
	c := code(t, srv, authorizeQuery(srv, "verifier-1"))
	r := postToken(t, srv, codeForm(c, "verifier-1"), true)
	if r.status != 200 || r.str("access_token") == "" || r.str("refresh_token") == "" || r.str("token_type") != "Bearer" ||
		r.body["expires_in"] != float64(3600) || r.str("scope") != "openid email" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token response %d %v", r.status, r.body)
	}
	idt := jwtClaims(t, r.str("id_token"))
	if idt["sub"] != "u-9" || idt["nonce"] != "n-0" || idt["aud"] != srv.ClientID || idt["iss"] != srv.Issuer ||
		idt["email_verified"] != true || idt["at_hash"] == nil {
		t.Errorf("ID token claims = %v", idt)
	}
	if !srv.ValidAccessToken(r.str("access_token")) {
		t.Error("issued access token is not valid")
	}

	wantError(t, postToken(t, srv, codeForm(c, "verifier-1"), true), 400, "invalid_grant")
	if srv.Exchanges() != 2 {
		t.Errorf("Exchanges() = %d, want 2", srv.Exchanges())
	}
}

func TestCodeGrantRefusals(t *testing.T) {
	tests := []struct {
		name          string
		challengeFrom string // verifier the challenge is made from; "" = no challenge
		form          func(code string) url.Values
		basic         bool
		status        int
		errCode       string
		codeStillGood bool // the request never redeemed the issued code
	}{
		{name: "unknown code", form: func(string) url.Values { return codeForm("nope", "") }, status: 400, errCode: "invalid_grant", codeStillGood: true},
		{name: "redirect_uri differs from the authorization request", challengeFrom: "v",
			form: func(c string) url.Values {
				f := codeForm(c, "v")
				f.Set("redirect_uri", "http://127.0.0.1:9/cb")
				return f
			}, status: 400, errCode: "invalid_grant"},
		{name: "missing PKCE verifier", challengeFrom: "v",
			form: func(c string) url.Values { return codeForm(c, "") }, status: 400, errCode: "invalid_grant"},
		{name: "wrong PKCE verifier", challengeFrom: "v",
			form: func(c string) url.Values { return codeForm(c, "w") }, status: 400, errCode: "invalid_grant"},
		{name: "verifier without a challenge",
			form: func(c string) url.Values { return codeForm(c, "v") }, status: 400, errCode: "invalid_grant"},
		{name: "two client authentication methods at once", basic: true, challengeFrom: "v",
			form: func(c string) url.Values {
				f := codeForm(c, "v")
				f.Set("client_secret", "upstream-secret")
				return f
			}, status: 400, errCode: "invalid_request", codeStillGood: true},
		{name: "unsupported grant type", form: func(string) url.Values {
			return url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}}
		}, status: 400, errCode: "unsupported_grant_type", codeStillGood: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstreamtest.NewServer(t, upstreamtest.Options{})
			c := code(t, srv, authorizeQuery(srv, tt.challengeFrom))
			wantError(t, postToken(t, srv, tt.form(c), tt.basic), tt.status, tt.errCode)
			right := postToken(t, srv, codeForm(c, tt.challengeFrom), false)
			if tt.codeStillGood {
				if right.status != 200 {
					t.Errorf("the untouched code was refused: %d %v", right.status, right.body)
				}
				return
			}
			// A refused code is burned too: the right request no longer works.
			wantError(t, right, 400, "invalid_grant")
		})
	}
}

func TestClientAuthentication(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{AuthMethods: []string{"client_secret_basic"}})
	c := code(t, srv, authorizeQuery(srv, "v"))
	r := postToken(t, srv, codeForm(c, "v"), false) // client_secret_post, not allowed
	wantError(t, r, 401, "invalid_client")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	f := codeForm(c, "v")
	req, _ := http.NewRequest(http.MethodPost, srv.TokenURL, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(srv.ClientID, "wrong")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("wrong basic secret: %s, want 401", resp.Status)
	}
	// Client authentication fails before the code is looked at: it still works.
	if r := postToken(t, srv, codeForm(c, "v"), true); r.status != 200 {
		t.Errorf("code after failed client authentication: %d %v", r.status, r.body)
	}
}

func TestRefreshGrantRotates(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	first := postToken(t, srv, codeForm(code(t, srv, authorizeQuery(srv, "v")), "v"), true)
	refresh := func(rt string) tokenResponse {
		return postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, false)
	}
	second := refresh(first.str("refresh_token"))
	if second.status != 200 || second.str("refresh_token") == first.str("refresh_token") || second.str("refresh_token") == "" {
		t.Fatalf("refresh response %d %v, want a rotated refresh token", second.status, second.body)
	}
	if idt := jwtClaims(t, second.str("id_token")); idt["nonce"] != nil {
		t.Errorf("refreshed ID token carries a nonce: %v", idt)
	}
	wantError(t, refresh(first.str("refresh_token")), 400, "invalid_grant")
	srv.RevokeRefreshTokens()
	wantError(t, refresh(second.str("refresh_token")), 400, "invalid_grant")
	if srv.Refreshes() != 3 {
		t.Errorf("Refreshes() = %d, want 3", srv.Refreshes())
	}
}

func TestNoRefreshTokensAndShortLivedAccessTokens(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{NoRefreshTokens: true})
	srv.SetAccessTokenTTL(20 * time.Millisecond)
	r := postToken(t, srv, codeForm(code(t, srv, authorizeQuery(srv, "v")), "v"), true)
	if r.str("refresh_token") != "" || r.body["expires_in"] != float64(1) {
		t.Errorf("token response %v, want no refresh token and expires_in rounded up to 1", r.body)
	}
	if !srv.ValidAccessToken(r.str("access_token")) {
		t.Fatal("fresh access token is not valid")
	}
	time.Sleep(30 * time.Millisecond)
	if srv.ValidAccessToken(r.str("access_token")) {
		t.Error("access token still valid after its lifetime")
	}
}

func TestUserInfo(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	r := postToken(t, srv, codeForm(code(t, srv, authorizeQuery(srv, "v")), "v"), true)
	// Changing the user later does not change who the issued token belongs to.
	srv.SetUser(upstreamtest.User{Subject: "someone-else"})

	call := func(method, token string) (int, map[string]any, http.Header) {
		req, _ := http.NewRequest(method, srv.UserInfoURL, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body, resp.Header
	}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		status, body, _ := call(m, r.str("access_token"))
		if status != 200 || body["sub"] != upstreamtest.DefaultUser.Subject || body["email"] != upstreamtest.DefaultUser.Email {
			t.Errorf("%s userinfo = %d %v", m, status, body)
		}
	}
	if status, _, h := call(http.MethodGet, ""); status != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("userinfo without a token = %d %v", status, h)
	}
	srv.ExpireAccessTokens()
	if status, _, _ := call(http.MethodGet, r.str("access_token")); status != 401 {
		t.Errorf("userinfo with an expired token = %d, want 401", status)
	}
	if srv.UserInfoCalls() != 4 {
		t.Errorf("UserInfoCalls() = %d, want 4", srv.UserInfoCalls())
	}
}

func TestDiscoveryDocument(t *testing.T) {
	fetch := func(srv *upstreamtest.Server) map[string]any {
		resp, err := srv.Client().Get(srv.URL + upstreamtest.PathDiscovery)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	doc := fetch(srv)
	if doc["issuer"] != srv.Issuer || doc["jwks_uri"] != srv.JWKSURL || doc["userinfo_endpoint"] != srv.UserInfoURL ||
		doc["code_challenge_methods_supported"] == nil {
		t.Errorf("discovery = %v", doc)
	}
	bare := fetch(upstreamtest.NewServer(t, upstreamtest.Options{NoPKCEDiscovery: true, NoUserInfo: true}))
	if bare["code_challenge_methods_supported"] != nil || bare["userinfo_endpoint"] != nil {
		t.Errorf("discovery = %v, want no PKCE methods and no userinfo", bare)
	}
	if srv.Discoveries() != 1 {
		t.Errorf("Discoveries() = %d", srv.Discoveries())
	}
}

func TestReadyMadeConfigsAreValid(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	for _, c := range []interface{ Validate() error }{srv.OIDCConfig(redirectURI), srv.OAuth2Config(redirectURI)} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate() = %v", err)
		}
	}
}

// With IncrementalScopes a second authorization asking for one more scope yields a
// token for every scope granted so far, and the log keeps what each request asked.
func TestIncrementalScopes(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{IncrementalScopes: true})
	p, err := upstream.New(context.Background(), withScopes(srv.OAuth2Config("http://127.0.0.1/cb"), "read:user"))
	if err != nil {
		t.Fatal(err)
	}
	var scopes []string
	for _, ask := range [][]string{nil, {"repo"}} {
		ap := upstream.NewAuthParams()
		ap.Scopes = ask
		cb := srv.Authorize(t, p.AuthCodeURL("st", ap))
		tok, _, err := p.Exchange(context.Background(), cb.Query().Get("code"), ap)
		if err != nil {
			t.Fatal(err)
		}
		scopes = append(scopes, tok.Scope)
	}
	if scopes[0] != "read:user" || scopes[1] != "read:user repo" {
		t.Errorf("token scopes %q, want read:user then read:user repo", scopes)
	}
	log := srv.AuthorizeRequests()
	if len(log) != 2 || log[0].Get("scope") != "read:user" || log[1].Get("scope") != "repo" {
		t.Errorf("authorize log %v", log)
	}
	if got := srv.LastUserInfoScope(); got != "read:user repo" {
		t.Errorf("LastUserInfoScope %q", got)
	}
}

func withScopes(c upstream.Config, scopes ...string) upstream.Config {
	c.Scopes = scopes
	return c
}

func TestFailTokenRequestsAnswersAnOutageUntilTurnedOff(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	first := postToken(t, srv, codeForm(code(t, srv, authorizeQuery(srv, "v")), "v"), true)
	refresh := func() tokenResponse {
		return postToken(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.str("refresh_token")}}, false)
	}
	srv.FailTokenRequests(http.StatusServiceUnavailable)
	wantError(t, refresh(), http.StatusServiceUnavailable, "server_error")
	srv.FailTokenRequests(0)
	// The failed request spent nothing: the refresh token still works.
	if r := refresh(); r.status != http.StatusOK || r.str("access_token") == "" {
		t.Fatalf("refresh after the outage: %d %v", r.status, r.body)
	}
	if srv.Refreshes() != 2 {
		t.Errorf("Refreshes() = %d, want 2: failed requests count too", srv.Refreshes())
	}
}

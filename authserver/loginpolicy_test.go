package authserver

import (
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/access"
	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/memory"
	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

// The MCP client of the access tests: trusted (no consent page), loopback redirect.
var accessClient = StaticClient{ID: "access-app", Name: "Access App", RedirectURIs: []string{"http://127.0.0.1/cb"}, Trusted: true}

// accessRedirect is on a port below the ephemeral range, which no test server has.
const accessRedirect = "http://127.0.0.1:10/cb"

// accessEnv is a real Server on a real listener with a real upstream provider (the
// fake GitHub, or upstreamtest's OIDC issuer) and an access policy.
type accessEnv struct {
	issuer string
	srv    *Server
	store  *testStore
}

// newAccessEnv starts the server; newProvider builds the upstream for our callback
// URL, and a is the access section as config would carry it.
func newAccessEnv(t *testing.T, newProvider func(callback string) upstream.Config, a config.Access) *accessEnv {
	t.Helper()
	ae := &accessEnv{}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ae.srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	ae.issuer = front.URL
	uc := newProvider(ae.issuer + DefaultCallbackPath)
	prov, err := upstream.New(t.Context(), uc)
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	mem := memory.New(memory.Options{Prefix: "access"})
	t.Cleanup(func() { _ = mem.Close() })
	ae.store = &testStore{Store: mem}
	reg, err := NewStaticClients(accessClient, resourceServer)
	if err != nil {
		t.Fatal(err)
	}
	ae.srv, err = New(Options{
		Issuer: ae.issuer, DisplayName: "Acme MCP",
		ScopesSupported: []string{"mcp", "tools:write", "tools:admin"}, DefaultScopes: []string{"mcp", "tools:write"},
		Store: ae.store, Upstream: prov, MasterKey: testKey, Clients: reg,
		Access: access.New(a, uc.Type),
	})
	if err != nil {
		t.Fatal(err)
	}
	return ae
}

// loginResult is where a browser login ended: at the client (a redirect to its
// redirect URI) or on a page of ours.
type loginResult struct {
	client *url.URL // the client's redirect URI with its parameters, or nil
	status int      // the last response's status
	page   string
	header http.Header
}

func (r loginResult) Header() http.Header { return r.header }

// login plays the browser from the authorization request to the client's redirect URI
// or to our page, following every redirect through the upstream.
func (ae *accessEnv) login(t *testing.T, scope string, p pkce, extra url.Values) loginResult {
	t.Helper()
	q := url.Values{"client_id": {accessClient.ID}, "redirect_uri": {accessRedirect}, "response_type": {"code"},
		"state": {"client-state-9"}, "code_challenge": {p.challenge}, "code_challenge_method": {"S256"}}
	if scope != "" {
		q.Set("scope", scope)
	}
	for k, v := range extra {
		q[k] = v
	}
	ae.store.forget()
	jar, _ := cookiejar.New(nil)
	var res loginResult
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "127.0.0.1:10" {
			res.client = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(ae.issuer + pathAuthorize + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	res.status, res.page, res.header = resp.StatusCode, string(body), resp.Header
	return res
}

// token redeems a code at the token endpoint.
func (ae *accessEnv) token(t *testing.T, code string, p pkce) tokens {
	t.Helper()
	resp, err := http.PostForm(ae.issuer+pathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {accessRedirect}, "code_verifier": {p.verifier}, "client_id": {accessClient.ID}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok tokens
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok
}

func (ae *accessEnv) introspectScope(t *testing.T, tok string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ae.issuer+pathIntrospect, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(resourceServer.ID, resourceServer.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out IntrospectionResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || !out.Active {
		t.Fatalf("introspect: %+v %v", out, err)
	}
	return out.Scope
}

// metric returns the text of our /metrics lines naming name.
func (ae *accessEnv) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get(ae.issuer + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var lines []string
	for l := range strings.Lines(string(body)) {
		if strings.HasPrefix(l, name) {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, "\n")
}

// grantedScope runs a login that must reach the client with a code, redeems it and
// checks the token response and introspection agree on the scope, which it returns.
func (ae *accessEnv) grantedScope(t *testing.T, scope string) string {
	t.Helper()
	p := newPKCE()
	res := ae.login(t, scope, p, nil)
	if res.client == nil || res.client.Query().Get("code") == "" {
		t.Fatalf("login ended with %d, not a code at the client: %s", res.status, res.page)
	}
	tok := ae.token(t, res.client.Query().Get("code"), p)
	if got := ae.introspectScope(t, tok.AccessToken); got != tok.Scope {
		t.Fatalf("introspection says scope %q, the token response %q", got, tok.Scope)
	}
	return tok.Scope
}

var continueLink = regexp.MustCompile(`<a id="continue" class="button" href="([^"]+)">`)

// wantRefused checks a login ended on our refusal page whose link takes the user to
// the client with access_denied, state and iss, and that nothing was stored for it.
func (ae *accessEnv) wantRefused(t *testing.T, res loginResult, account string) {
	t.Helper()
	if res.client != nil || res.status != http.StatusForbidden {
		t.Fatalf("login ended at %v with %d, want our 403 page", res.client, res.status)
	}
	wantHTMLPage(t, res)
	if !strings.Contains(res.page, "Your account is not allowed to sign in to Acme MCP") ||
		!strings.Contains(res.page, `<strong id="account">`+html.EscapeString(account)+`</strong>`) {
		t.Errorf("refusal page does not say who was refused where:\n%s", res.page)
	}
	m := continueLink.FindStringSubmatch(res.page)
	if m == nil {
		t.Fatalf("no continue link on the refusal page:\n%s", res.page)
	}
	u, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme+"://"+u.Host+u.Path != accessRedirect || q.Get("error") != "access_denied" ||
		q.Get("state") != "client-state-9" || q.Get("iss") != ae.issuer || q.Get("code") != "" {
		t.Errorf("continue link %s: want the client's redirect URI with error=access_denied, state and iss", u)
	}
	ae.wantNothingIssued(t)
}

// forget clears what the store recorded, so a check sees one login's calls.
func (s *testStore) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = nil
}

// wantNothingIssued checks the last login stored no code, token or upstream token.
func (ae *accessEnv) wantNothingIssued(t *testing.T) {
	t.Helper()
	rec := ae.store.recorded()
	for _, op := range []string{"SaveCode", "SaveLogin", "PutUpstreamToken", "RedeemCode"} {
		if strings.Contains(rec, op+" ") {
			t.Errorf("the store was asked to %s for a refused login", op)
		}
	}
}

func TestGitHubOrganizationAndTeamRulesAtTheCallback(t *testing.T) {
	gh := upstreamtest.NewGitHub(t, upstreamtest.GitHubUser{})
	ae := newAccessEnv(t, gh.Config, config.Access{
		Allow: config.AccessRules{GitHubOrganizations: []string{"acme"}},
		ScopeMappings: []config.ScopeMapping{
			{Scopes: []string{"tools:admin"}, Members: config.AccessRules{GitHubTeams: []string{"acme/platform"}}},
			{Scopes: []string{"tools:write"}, Members: config.AccessRules{GitHubTeams: []string{"acme/devs", "acme/platform"}}},
		},
	})

	t.Run("outside the organization", func(t *testing.T) {
		gh.SetUser(upstreamtest.GitHubUser{ID: 9, Login: "mallory", Email: "mallory@evil.example", Orgs: []string{"evil"}, Teams: []string{"evil/platform"}})
		ae.wantRefused(t, ae.login(t, "mcp", newPKCE(), nil), "mallory@evil.example")
		if _, err := ae.store.GetUpstreamToken(t.Context(), "9"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an upstream token was kept for a refused user: %v", err)
		}
		if got := ae.metric(t, "mcpauth_logins_refused_total"); got != `mcpauth_logins_refused_total{reason="not_allowed"} 1` {
			t.Errorf("refusal metric:\n%s", got)
		}
	})
	t.Run("the upstream was asked for read:org", func(t *testing.T) {
		if !strings.Contains(gh.LastScope(), "read:org") {
			t.Errorf("upstream scope %q", gh.LastScope())
		}
	})
	t.Run("a team member gets the mapped scopes", func(t *testing.T) {
		gh.SetUser(upstreamtest.GitHubUser{ID: 1, Login: "octocat", Orgs: []string{"acme"}, Teams: []string{"acme/platform"}})
		if got := ae.grantedScope(t, "mcp tools:write tools:admin"); got != "mcp tools:write tools:admin" {
			t.Errorf("scope %q", got)
		}
	})
	t.Run("a member outside the teams gets only unrestricted scopes", func(t *testing.T) {
		gh.SetUser(upstreamtest.GitHubUser{ID: 2, Login: "newbie", Orgs: []string{"acme"}})
		if got := ae.grantedScope(t, "mcp tools:write tools:admin"); got != "mcp" {
			t.Errorf("scope %q", got)
		}
	})
	t.Run("a mapped default scope needs membership too", func(t *testing.T) {
		gh.SetUser(upstreamtest.GitHubUser{ID: 3, Login: "dev", Orgs: []string{"acme"}, Teams: []string{"acme/devs"}})
		if got := ae.grantedScope(t, ""); got != "mcp tools:write" {
			t.Errorf("scope with the defaults %q", got)
		}
		gh.SetUser(upstreamtest.GitHubUser{ID: 2, Login: "newbie", Orgs: []string{"acme"}})
		if got := ae.grantedScope(t, ""); got != "mcp" {
			t.Errorf("scope with the defaults for a non-member %q", got)
		}
	})
	t.Run("a mapped scope is granted only when asked for", func(t *testing.T) {
		gh.SetUser(upstreamtest.GitHubUser{ID: 1, Login: "octocat", Orgs: []string{"acme"}, Teams: []string{"acme/platform"}})
		if got := ae.grantedScope(t, "mcp"); got != "mcp" {
			t.Errorf("scope %q", got)
		}
	})
	t.Run("nothing asked for is granted", func(t *testing.T) {
		gh.SetUser(upstreamtest.GitHubUser{ID: 2, Login: "newbie", Email: "newbie@acme.example", Orgs: []string{"acme"}})
		res := ae.login(t, "tools:admin", newPKCE(), nil)
		if res.status != http.StatusForbidden || !strings.Contains(res.page, "not granted any of the access the application asked for") {
			t.Fatalf("login ended with %d:\n%s", res.status, res.page)
		}
		if got := ae.metric(t, `mcpauth_logins_refused_total{reason="no_granted_scope"}`); got != `mcpauth_logins_refused_total{reason="no_granted_scope"} 1` {
			t.Errorf("metric %q", got)
		}
	})
}

func TestGitHubAPIFailuresFailClosed(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header http.Header
		want   string
	}{
		{"GitHub is down", http.StatusBadGateway, nil, "temporarily_unavailable"},
		{"rate limit spent", http.StatusForbidden, http.Header{"X-Ratelimit-Remaining": {"0"}}, "temporarily_unavailable"},
		{"the organization refuses the app", http.StatusForbidden, nil, "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh := upstreamtest.NewGitHub(t, upstreamtest.GitHubUser{ID: 1, Login: "octocat", Orgs: []string{"acme"}})
			ae := newAccessEnv(t, gh.Config, config.Access{Allow: config.AccessRules{GitHubOrganizations: []string{"acme"}}})
			gh.FailMemberships(tt.status, tt.header)
			res := ae.login(t, "mcp", newPKCE(), nil)
			if res.client == nil {
				t.Fatalf("login ended with %d, not at the client: %s", res.status, res.page)
			}
			q := res.client.Query()
			if q.Get("error") != tt.want || q.Get("code") != "" || q.Get("iss") != ae.issuer || q.Get("state") != "client-state-9" {
				t.Errorf("client redirect %s: want error=%s with iss and state, no code", res.client, tt.want)
			}
			ae.wantNothingIssued(t)
			if got := ae.metric(t, "mcpauth_logins_refused_total"); got != `mcpauth_logins_refused_total{reason="check_failed"} 1` {
				t.Errorf("metric %q", got)
			}
		})
	}
}

func TestOIDCGroupRulesAtTheCallback(t *testing.T) {
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	ae := newAccessEnv(t, idp.OIDCConfig, config.Access{
		Allow:         config.AccessRules{Groups: []string{"mcp-users"}},
		ScopeMappings: []config.ScopeMapping{{Scopes: []string{"tools:admin"}, Members: config.AccessRules{Groups: []string{"team-admins"}}}},
	})
	t.Run("outside the group", func(t *testing.T) {
		idp.SetUser(upstreamtest.User{Subject: "eve", Email: "eve@example.com", Groups: []string{"everyone"}})
		ae.wantRefused(t, ae.login(t, "mcp tools:admin", newPKCE(), nil), "eve@example.com")
	})
	t.Run("in the group, and an admin", func(t *testing.T) {
		idp.SetUser(upstreamtest.User{Subject: "ada", Groups: []string{"mcp-users", "team-admins"}})
		if got := ae.grantedScope(t, "mcp tools:admin"); got != "mcp tools:admin" {
			t.Errorf("scope %q", got)
		}
	})
	t.Run("in the group, not an admin", func(t *testing.T) {
		idp.SetUser(upstreamtest.User{Subject: "bob", Groups: []string{"mcp-users"}})
		if got := ae.grantedScope(t, "mcp tools:admin"); got != "mcp" {
			t.Errorf("scope %q", got)
		}
	})
}

func TestGoogleHostedDomainComesFromTheIDToken(t *testing.T) {
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	google := func(callback string) upstream.Config {
		c := idp.OIDCConfig(callback)
		c.Type = upstream.TypeGoogle // the preset, pointed at the fake issuer
		return c
	}
	ae := newAccessEnv(t, google, config.Access{Allow: config.AccessRules{GoogleHostedDomains: []string{"corp.example"}}})

	t.Run("a Workspace account of the domain", func(t *testing.T) {
		idp.SetUser(upstreamtest.User{Subject: "111", Email: "ann@corp.example", Claims: map[string]any{"hd": "corp.example"}})
		if got := ae.grantedScope(t, "mcp"); got != "mcp" {
			t.Errorf("scope %q", got)
		}
	})
	t.Run("a personal account, whatever the request says", func(t *testing.T) {
		idp.SetUser(upstreamtest.User{Subject: "222", Email: "joe@gmail.example"})
		// hd in the authorization request is a hint to Google's account chooser; it
		// proves nothing and must not count.
		ae.wantRefused(t, ae.login(t, "mcp", newPKCE(), url.Values{"hd": {"corp.example"}}), "joe@gmail.example")
	})
	t.Run("userinfo cannot override the signed ID token", func(t *testing.T) {
		idp.SetUser(upstreamtest.User{Subject: "333", Email: "x@other.example", Claims: map[string]any{"hd": "corp.example"}})
		idp.MutateIDToken(func(c map[string]any) { c["hd"] = "other.example" })
		defer idp.MutateIDToken(nil)
		ae.wantRefused(t, ae.login(t, "mcp", newPKCE(), nil), "x@other.example")
	})
}

// A native app's private-use scheme redirect URI must reach the page's link intact:
// html/template would replace a URL of a scheme it does not know with "#ZgotmplZ".
func TestRefusalLinkKeepsAPrivateUseSchemeRedirectURI(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Access = access.New(config.Access{Allow: config.AccessRules{Users: []string{"someone-else"}}}, upstream.TypeOIDC)
	})
	b := e.browser()
	rec := b.get(authorizeURL(authzQuery(publicClient.ID, nativeRedirect, newPKCE())))
	form := consentForm(t, rec.Body.String())
	form.Set("decision", "approve")
	up := location(t, b.postForm(testIssuer+pathConsent, form))
	rec = b.get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {up.Query().Get("state")}}))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("callback: %d %s", rec.Code, rec.Body.String())
	}
	wantHTMLPage(t, rec)
	m := continueLink.FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("no continue link:\n%s", rec.Body.String())
	}
	link := html.UnescapeString(m[1])
	if !strings.HasPrefix(link, nativeRedirect+"?") || !strings.Contains(link, "error=access_denied") {
		t.Errorf("continue link %q", link)
	}
	if !strings.Contains(rec.Body.String(), "Public App") {
		t.Error("the page does not name the client")
	}
}

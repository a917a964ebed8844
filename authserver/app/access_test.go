package app

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

// serveConfig runs an App from yaml on a listener whose address is the issuer (the
// upstream must send the browser back to it), and returns that base URL.
func serveConfig(t *testing.T, yaml string) string {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	getenv := func(k string) string {
		if k == config.EnvUpstreamClientSecret {
			return "gh-secret"
		}
		return ""
	}
	cfg, err := config.Parse([]byte("issuer: "+base+"\n"+yaml), getenv)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(t.Context(), cfg, Options{Getenv: getenv, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.store.Close() })
	ts.Config.Handler = a.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return base
}

// browse follows a login from the authorization request through the upstream and
// back, and returns the client redirect (nil if none) and the last page.
func browse(t *testing.T, base, scope string) (*url.URL, int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "127.0.0.1:9" {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	u := authorize(base, "cli") + "&state=s1&scope=" + url.QueryEscape(scope)
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return back, resp.StatusCode, string(body)
}

// The binary's wiring: the access section reaches the server, read:org is added to
// the github preset's scopes, and upstream.apiURL points membership checks (and /user)
// at the API.
func TestAccessRulesFromTheConfigFileWithGitHub(t *testing.T) {
	gh := upstreamtest.NewGitHub(t, upstreamtest.GitHubUser{ID: 5, Login: "outsider", Orgs: []string{"other"}})
	base := serveConfig(t, `
scopesSupported: [mcp, tools:admin]
upstream:
  type: github
  clientID: gh-client
  authorizationURL: `+gh.URL+upstreamtest.GitHubPathAuthorize+`
  tokenURL: `+gh.URL+upstreamtest.GitHubPathToken+`
  apiURL: `+gh.APIURL+`
clients:
- {clientID: cli, redirectURIs: ['http://127.0.0.1:9/cb'], trusted: true}
access:
  allow:
    githubOrganizations: [acme]
  scopeMappings:
  - scopes: [tools:admin]
    members: {githubTeams: [acme/platform]}
`)
	back, status, page := browse(t, base, "mcp tools:admin")
	if back != nil || status != http.StatusForbidden || !strings.Contains(page, "is not allowed to sign in") {
		t.Fatalf("outsider: redirect %v, %d:\n%s", back, status, page)
	}
	if got := gh.LastScope(); got != "read:user user:email read:org" {
		t.Errorf("upstream scope %q, want the preset's and read:org", got)
	}

	gh.SetUser(upstreamtest.GitHubUser{ID: 6, Login: "member", Orgs: []string{"acme"}, Teams: []string{"acme/platform"}})
	back, status, page = browse(t, base, "mcp tools:admin")
	if back == nil || back.Query().Get("code") == "" {
		t.Fatalf("member: %d, not a code at the client:\n%s", status, page)
	}
	if gh.TeamCalls() == 0 {
		t.Error("the team mapping was not checked against the API")
	}
}

// access.groupsClaim names the claim the groups come from.
func TestAccessGroupsClaimFromTheConfigFile(t *testing.T) {
	idp := upstreamtest.NewServer(t, upstreamtest.Options{ClientID: "gh-client", ClientSecret: "gh-secret",
		User: &upstreamtest.User{Subject: "u1", Groups: []string{"mcp-users"}, Claims: map[string]any{"realm_access": map[string]any{"roles": []string{"viewer"}}}}})
	base := serveConfig(t, `
upstream: {type: oidc, clientID: gh-client, issuerURL: `+idp.Issuer+`}
clients:
- {clientID: cli, redirectURIs: ['http://127.0.0.1:9/cb'], trusted: true}
access:
  allow: {groups: [mcp-users]}
  groupsClaim: realm_access.roles
`)
	// In "groups" but not in the configured claim: refused.
	if back, status, page := browse(t, base, "mcp"); back != nil || status != http.StatusForbidden {
		t.Fatalf("redirect %v, %d:\n%s", back, status, page)
	}
	idp.SetUser(upstreamtest.User{Subject: "u2", Claims: map[string]any{"realm_access": map[string]any{"roles": []string{"mcp-users"}}}})
	if back, status, page := browse(t, base, "mcp"); back == nil || back.Query().Get("code") == "" {
		t.Fatalf("%d, not a code at the client:\n%s", status, page)
	}
}

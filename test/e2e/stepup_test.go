package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
	"github.com/mcpauth/mcpauth/examples/mcpserver/server"
)

// stepUpSummary is client.mjs's account of the step-up (STEP_UP_TOOL).
type stepUpSummary struct {
	Tool                 string            `json:"tool"`
	FirstError           string            `json:"firstError"`
	Challenge            string            `json:"challenge"`
	AuthorizationRequest map[string]string `json:"authorizationRequest"`
	Pages                []struct {
		Page string `json:"page"`
	} `json:"pages"`
	ToolsBefore []string       `json:"toolsBefore"`
	ToolsAfter  []string       `json:"toolsAfter"`
	Identity    map[string]any `json:"identity"`
	Scopes      []string       `json:"scopes"`
	TokenScopes []string       `json:"tokenScopes"`
}

// TestStepUpEndToEnd runs a step-up with the official TypeScript MCP SDK client: it
// logs in with the scope of the first challenge (mcp), calls admin_whoami, which
// needs tools:admin, gets 403 insufficient_scope naming the scope, authorizes again
// with it, and the call succeeds. The authorization server maps tools:admin to the
// upstream scope repo: the upstream provider must see a second authorization asking
// for repo alone, and the upstream token the tool then uses must carry it.
//
// The upstream is the Go fake IdP (upstreamtest) as a plain OAuth 2.0 provider, as
// GitHub is: its identity comes from its user-info endpoint, so an incremental request
// can ask for exactly the missing scope (an OpenID provider needs openid in every
// request to say who the user is), it grants scopes incrementally as GitHub does, and
// it logs every authorization request it gets. The authorization server is the real
// binary; the MCP server the example, in process, with tools/list filtered.
func TestStepUpEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("the end-to-end test starts real processes; skipped in -short mode")
	}
	node, nodeDir := requireNode(t)
	root := moduleRoot(t)
	readInputs(t, root, nodeDir)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	bin := t.TempDir() + "/authserver"
	if err := goBuild(ctx, root, bin, "./cmd/authserver"); err != nil {
		t.Fatal(err)
	}
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + proxyLn.Addr().String()
	idp := upstreamtest.NewServer(t, upstreamtest.Options{
		IncrementalScopes: true,
		RedirectURIs:      []string{issuer + "/oauth/callback"},
	})

	dir := t.TempDir()
	mcpSecret := randomHex(t)
	configFile := writeFile(t, dir, "authserver.yaml", fmt.Sprintf(`issuer: %s
listenAddress: 127.0.0.1:0
displayName: mcpauth step-up
scopesSupported: [mcp, tools:admin]
defaultScopes: [mcp]
upstreamScopes:
  tools:admin: [repo]
upstream:
  type: oauth2
  clientID: %s
  authorizationURL: %s
  tokenURL: %s
  userInfoURL: %s
  userIDField: sub
  scopes: [read:user]
dynamicRegistration:
  enabled: true
clients:
  - clientID: %s
    clientName: step-up MCP server
    secretFile: %s
    redirectURIs: ["https://mcp-server.invalid/unused"]
    introspectUpstream: true
`, issuer, idp.ClientID, idp.AuthorizeURL, idp.TokenURL, idp.UserInfoURL, mcpServerClient,
		writeFile(t, dir, "mcp-server-secret", mcpSecret)))
	env := []string{
		"MCPAUTH_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(randomBytes(t, 32)),
		"MCPAUTH_UPSTREAM_CLIENT_SECRET=" + idp.ClientSecret,
	}
	var serverErrors atomic.Int64
	p := startProcess(t, "authserver", dir, env, bin, "--config", configFile, "--log-level", "debug")
	p.stderr.watch(func(line string) {
		if strings.Contains(line, `"level":"ERROR"`) {
			serverErrors.Add(1)
		}
	})
	backend := awaitListening(ctx, t, p)
	awaitReady(ctx, t, "http://"+backend+"/readyz")
	proxy := &http.Server{Handler: newRoundRobin([]string{backend}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = proxy.Serve(proxyLn) }()
	t.Cleanup(func() { _ = proxy.Close() })
	mcpURL := startMCPServer(t, issuer, mcpSecret, idp.UserInfoURL, func(c *server.Config) { c.FilterToolsList = true })

	sum, err := runClient(ctx, t, node, nodeDir, "stepup", []string{
		"MCP_URL=" + mcpURL,
		"EXPECT_ISSUER=" + issuer,
		"IDP_USER_LOGIN=unused", // the fake IdP logs its user in without a page
		"IDP_USER_PASSWORD=unused",
		"EXPECT_SUB=" + upstreamtest.DefaultUser.Subject,
		"EXPECT_EMAIL=" + upstreamtest.DefaultUser.Email,
		"EXPIRY_WAIT_MS=0",
		"CLIENT_MODE=dcr",
		"STEP_UP_TOOL=admin_whoami",
	})
	if err != nil {
		t.Fatal(err)
	}
	checkStepUp(t, sum, mcpURL)

	// What the upstream saw: the login with the provider's scopes, then one more
	// authorization asking for only the extra upstream scope.
	var asked []string
	for _, q := range idp.AuthorizeRequests() {
		asked = append(asked, q.Get("scope"))
	}
	if !slices.Equal(asked, []string{"read:user", "repo"}) {
		t.Errorf("the upstream saw authorizations asking for %q, want [read:user repo]: the login, then only the missing scope", asked)
	}
	// The tool called the upstream with the replaced upstream token, which covers both.
	if got := idp.LastUserInfoScope(); got != "read:user repo" {
		t.Errorf("the upstream token admin_whoami used covers %q, want read:user repo", got)
	}
	if n := serverErrors.Load(); n > 0 {
		t.Errorf("the authorization server logged %d errors", n)
	}
}

func checkStepUp(t *testing.T, sum *clientSummary, mcpURL string) {
	t.Helper()
	if got := sum.AuthorizationRequest["scope"]; got != "mcp" {
		t.Errorf("the first authorization asked for %q, want the 401 challenge's mcp", got)
	}
	s := sum.StepUp
	if s == nil {
		t.Fatal("client.mjs reported no step-up")
	}
	prm := strings.Replace(mcpURL, "/mcp", "/.well-known/oauth-protected-resource/mcp", 1)
	for _, want := range []string{`Bearer error="insufficient_scope"`, `scope="mcp tools:admin"`, `resource_metadata="` + prm + `"`} {
		if !strings.Contains(s.Challenge, want) {
			t.Errorf("the 403 challenge %q lacks %s", s.Challenge, want)
		}
	}
	if !strings.Contains(s.FirstError, "403") {
		t.Errorf("the first call failed with %q, want the 403", s.FirstError)
	}
	if got := s.AuthorizationRequest["scope"]; got != "mcp tools:admin" {
		t.Errorf("the step-up asked our server for %q, want the challenge's mcp tools:admin", got)
	}
	if got := s.AuthorizationRequest["resource"]; got != mcpURL {
		t.Errorf("the step-up's resource %q, want %q", got, mcpURL)
	}
	if !slices.ContainsFunc(s.Pages, func(p struct {
		Page string `json:"page"`
	}) bool {
		return p.Page == "mcpauth-consent"
	}) {
		t.Errorf("the step-up did not ask the user to consent to the wider scope (pages %v)", s.Pages)
	}
	if slices.Contains(s.ToolsBefore, "admin_whoami") || !slices.Contains(s.ToolsAfter, "admin_whoami") {
		t.Errorf("tools/list before %v, after %v: admin_whoami should appear only with tools:admin", s.ToolsBefore, s.ToolsAfter)
	}
	if !slices.Contains(s.Scopes, "tools:admin") || s.Identity["sub"] != upstreamtest.DefaultUser.Subject {
		t.Errorf("admin_whoami after the step-up: scopes %v, identity %v", s.Scopes, s.Identity)
	}
	if len(s.TokenScopes) == 0 || s.TokenScopes[len(s.TokenScopes)-1] != "mcp tools:admin" {
		t.Errorf("tokens saved during the step-up have scopes %q, want the last mcp tools:admin", s.TokenScopes)
	}
}

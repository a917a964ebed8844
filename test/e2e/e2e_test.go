// Package e2e runs mcpauth end to end with real components and a real MCP client.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test user at the upstream provider. Its sub differs from its login, so an
// identity that comes back with this sub came from the provider's own account record.
const (
	userLogin = "alice"
	userSub   = "248289761001"
	userEmail = "alice@example.com"
	userName  = "Alice Example"
)

const (
	upstreamClientID = "mcpauth-e2e"    // our server's client at the upstream provider
	mcpServerClient  = "e2e-mcp-server" // the MCP server's introspection client
	replicas         = 2
	accessTokenTTL   = 5 // seconds (OAUTH_ACCESS_TOKEN_TTL): it expires during the test
)

// TestMCPClientsEndToEnd runs the whole system with real components: a real Redis, a
// real upstream OpenID provider (oidc-provider from npm), two authorization server
// processes (the real binary) behind a round-robin proxy, the example MCP server, and
// the official TypeScript MCP SDK's client, once registering dynamically and once with
// a Client ID Metadata Document. Each client logs in through the consent and login
// pages, calls the protected whoami tool, waits for its access token to expire, and
// calls it again after the SDK refreshed the token.
func TestMCPClientsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("the end-to-end test starts real processes; skipped in -short mode")
	}
	node, nodeDir := requireNode(t)
	readInputs(t, moduleRoot(t), nodeDir)
	began := time.Now()
	// Generous, for a cold build cache; each wait inside has its own, shorter bound.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()

	sys := startSystem(ctx, t, node, nodeDir)
	summaries := sys.runClients(ctx, t, node, nodeDir, "dcr", "cimd")
	t.Logf("clients done (%s)", time.Since(began).Round(time.Millisecond))
	if t.Failed() {
		for _, b := range sys.backends {
			t.Logf("metrics of %s:\n%s", b, strings.Join(requestSeries(t, b), "\n"))
		}
		t.FailNow()
	}

	for mode, s := range summaries {
		checkSummary(t, mode, s, sys.issuer, sys.mcpURL)
	}
	if dcr := summaries["dcr"]; !slices.ContainsFunc(dcr.Requests, hasPrefix("POST /oauth/register 201")) {
		t.Errorf("dcr: the SDK did not register dynamically: %v", dcr.Requests)
	}
	if c := summaries["cimd"]; c.ClientID != sys.cimd.ClientID || slices.ContainsFunc(c.Requests, hasPrefix("POST /oauth/register")) {
		t.Errorf("cimd: client_id %q (want the document URL %q), requests %v", c.ClientID, sys.cimd.ClientID, c.Requests)
	}
	if sys.cimd.Fetches.Load() == 0 {
		t.Error("no authorization server fetched the client metadata document")
	}
	sys.checkReplicas(t)
	t.Logf("end-to-end test took %s", time.Since(began).Round(time.Millisecond))
}

// runClients runs client.mjs once per mode, all at once (they are independent, and the
// test stays short), and returns their summaries by mode. A failed run fails the test.
func (s *system) runClients(ctx context.Context, t *testing.T, node, nodeDir string, modes ...string) map[string]*clientSummary {
	t.Helper()
	env := []string{
		"MCP_URL=" + s.mcpURL,
		"EXPECT_ISSUER=" + s.issuer,
		"IDP_USER_LOGIN=" + userLogin,
		"IDP_USER_PASSWORD=" + s.password,
		"EXPECT_SUB=" + userSub,
		"EXPECT_EMAIL=" + userEmail,
		"EXPIRY_WAIT_MS=" + strconv.Itoa(accessTokenTTL*1000+1500),
	}
	type result struct {
		mode    string
		summary *clientSummary
		err     error
	}
	results := make(chan result, len(modes))
	for _, mode := range modes {
		env := append(slices.Clone(env), "CLIENT_MODE="+mode)
		if mode == "cimd" {
			env = append(env, "CIMD_URL="+s.cimd.ClientID)
		}
		go func() {
			sum, err := runClient(ctx, t, node, nodeDir, mode, env)
			results <- result{mode, sum, err}
		}()
	}
	summaries := map[string]*clientSummary{}
	for range modes {
		r := <-results
		if r.err != nil {
			t.Errorf("MCP client (%s): %v", r.mode, r.err)
			continue
		}
		summaries[r.mode] = r.summary
	}
	return summaries
}

// checkReplicas checks, from each replica's own metrics, that every replica served
// part of the logins, that refresh grants were issued, and that no replica logged an
// error.
func (s *system) checkReplicas(t *testing.T) {
	t.Helper()
	var refreshes float64
	for i, b := range s.backends {
		m := scrapeMetrics(t, b)
		if m.oauthRequests == 0 {
			t.Errorf("authorization server %s served no OAuth request (the proxy sent it %d requests)", b, s.proxy.served[i].Load())
		}
		refreshes += m.refreshTokensIssued
		t.Logf("%s: %d requests through the proxy, %.0f on OAuth endpoints, %.0f refresh grants",
			b, s.proxy.served[i].Load(), m.oauthRequests, m.refreshTokensIssued)
	}
	if refreshes < 2 {
		t.Errorf("the servers issued %v tokens by refresh, want at least one per client", refreshes)
	}
	if n := s.serverErrors.Load(); n > 0 {
		t.Errorf("the authorization servers logged %d errors (level ERROR, above)", n)
	}
}

// clientSummary is what client.mjs prints on success.
type clientSummary struct {
	Mode       string `json:"mode"`
	ClientID   string `json:"clientID"`
	Registered []struct {
		ClientID                string   `json:"client_id"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
		GrantTypes              []string `json:"grant_types"`
	} `json:"registered"`
	AuthorizationRequest map[string]string `json:"authorizationRequest"`
	Iss                  string            `json:"iss"`
	Pages                []struct {
		Page        string `json:"page"`
		URL         string `json:"url"`
		ClientShown bool   `json:"clientShown"`
	} `json:"pages"`
	Tools                []string       `json:"tools"`
	Identity             map[string]any `json:"identity"`
	IdentityAfterRefresh map[string]any `json:"identityAfterRefresh"`
	TokensSaved          int            `json:"tokensSaved"`
	Refreshed            int            `json:"refreshed"`
	AccessTokenChanged   bool           `json:"accessTokenChanged"`
	RefreshTokenRotated  bool           `json:"refreshTokenRotated"`
	ExpiresIn            int            `json:"expiresIn"`
	Invalidated          []string       `json:"invalidated"`
	Requests             []string       `json:"requests"`
	StepUp               *stepUpSummary `json:"stepUp"`
}

// runClient runs client.mjs once and returns its summary.
func runClient(ctx context.Context, t *testing.T, node, nodeDir, mode string, env []string) (*clientSummary, error) {
	out, err := runToEnd(ctx, t, "client-"+mode, nodeDir, env, node, "client.mjs")
	if err != nil {
		return nil, fmt.Errorf("client.mjs failed (%v); its log is above", err)
	}
	var s clientSummary
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("client.mjs printed no JSON summary (%v): %q", err, out)
	}
	return &s, nil
}

// checkSummary checks one client run: who it logged in as, the pages it went through,
// what it asked for, and that the SDK refreshed the expired token.
func checkSummary(t *testing.T, mode string, s *clientSummary, issuer, mcpURL string) {
	t.Helper()
	for _, id := range []map[string]any{s.Identity, s.IdentityAfterRefresh} {
		if id["sub"] != userSub || id["email"] != userEmail || id["name"] != userName {
			t.Errorf("%s: whoami returned %v, want the upstream test user (sub %s, email %s)", mode, id, userSub, userEmail)
		}
	}
	if s.Iss != issuer {
		t.Errorf("%s: iss %q, want %q", mode, s.Iss, issuer)
	}
	var pages []string
	for _, p := range s.Pages {
		pages = append(pages, p.Page)
		if p.Page == "mcpauth-consent" && !p.ClientShown {
			t.Errorf("%s: the consent page does not show the redirect URI's host", mode)
		}
	}
	for _, want := range []string{"mcpauth-consent", "upstream-login"} {
		if !slices.Contains(pages, want) {
			t.Errorf("%s: the browser step never met the %s page (pages: %v)", mode, want, pages)
		}
	}
	if got := s.AuthorizationRequest["resource"]; got != mcpURL {
		t.Errorf("%s: authorization request resource %q, want %q", mode, got, mcpURL)
	}
	if s.Refreshed < 1 || !s.AccessTokenChanged || !s.RefreshTokenRotated {
		t.Errorf("%s: no refresh after expiry: %d refreshes, access token changed %v, refresh token rotated %v",
			mode, s.Refreshed, s.AccessTokenChanged, s.RefreshTokenRotated)
	}
	if s.ExpiresIn > accessTokenTTL {
		t.Errorf("%s: expires_in %d, want at most %d", mode, s.ExpiresIn, accessTokenTTL)
	}
	if len(s.Invalidated) > 0 {
		t.Errorf("%s: the SDK discarded credentials (%v): some step failed and was retried", mode, s.Invalidated)
	}
	checkRequests(t, mode, s.Requests)
	t.Logf("%s: client %s, pages %v, %d token sets saved", mode, s.ClientID, pages, s.TokensSaved)
}

// checkRequests checks the SDK's own requests: the 401, discovery through the
// protected-resource metadata (path-inserted) and RFC 8414, and two token requests (the
// code exchange and the refresh).
func checkRequests(t *testing.T, mode string, requests []string) {
	t.Helper()
	for _, want := range []string{
		"POST /mcp 401",
		"GET /.well-known/oauth-protected-resource/mcp 200",
		"GET /.well-known/oauth-authorization-server 200",
	} {
		if !slices.ContainsFunc(requests, hasPrefix(want)) {
			t.Errorf("%s: the SDK never made the request %q: %v", mode, want, requests)
		}
	}
	tokenRequests := 0
	for _, r := range requests {
		if r == "POST /oauth/token 200" {
			tokenRequests++
		}
	}
	if tokenRequests < 2 {
		t.Errorf("%s: %d successful token requests, want a code exchange and a refresh: %v", mode, tokenRequests, requests)
	}
}

func hasPrefix(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

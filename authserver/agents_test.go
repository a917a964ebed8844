package authserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/access"
	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// Clients of agents without a browser.
var (
	// ccClient is a confidential machine client (client_credentials only).
	ccClient = StaticClient{ID: "agent", Name: "Nightly Agent", Secret: "agent-secret",
		GrantTypes: []string{grantClientCredentials}, Scopes: []string{"read", "write"}}
	// deviceCLI is a public command-line client (device code with refresh).
	deviceCLI = StaticClient{ID: "cli", Name: "Example CLI", GrantTypes: []string{grantDeviceCode, grantRefresh}}
	// otherCLI is another device client, to poll with a device code not its own.
	otherCLI = StaticClient{ID: "other-cli", GrantTypes: []string{grantDeviceCode}}
	// exchanger is an MCP server that may exchange tokens bound to agentResource.
	exchanger = StaticClient{ID: "exchanger", Secret: "exchanger-secret", RedirectURIs: []string{webRedirect},
		Resources: []string{agentResource}}
)

const agentResource = "https://tools.example.com/mcp"

// newAgentEnv is newEnv with the agent clients registered and the device flow on.
func newAgentEnv(t *testing.T, mods ...func(*Options)) *env {
	t.Helper()
	return newEnv(t, append([]func(*Options){func(o *Options) {
		reg, err := NewStaticClients(publicClient, resourceServer, ccClient, deviceCLI, otherCLI, exchanger)
		if err != nil {
			t.Fatal(err)
		}
		o.Clients = reg
		o.DeviceAuthorization.Enabled = true
	}}, mods...)...)
}

func TestClientCredentialsIssuesAnAccessTokenForTheClientItself(t *testing.T) {
	e := newAgentEnv(t)
	rec := e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}, "scope": {"read admin"},
		"resource": {agentResource}}, ccClient.ID, ccClient.Secret)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var tok tokens
	decodeJSON(t, rec.Body, &tok)
	if tok.AccessToken == "" || tok.RefreshToken != "" || tok.Scope != "read" || tok.ExpiresIn != int64(DefaultAccessTokenTTL/time.Second) {
		t.Fatalf("token response %+v: want an access token, no refresh token, scope narrowed to read", tok)
	}
	info := e.introspect(tok.AccessToken)
	if info["active"] != true || info["sub"] != ccClient.ID || info["client_id"] != ccClient.ID || info["scope"] != "read" {
		t.Fatalf("introspection %v: want active, sub and client_id the client", info)
	}
	if aud, _ := info["aud"].([]any); len(aud) != 1 || aud[0] != agentResource {
		t.Errorf("aud %v, want [%s]", info["aud"], agentResource)
	}
	if _, ok := info["upstream_access_token"]; ok {
		t.Error("a client_credentials token came with an upstream token")
	}

	// No scope asked: every scope the client may have.
	rec = e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}}, ccClient.ID, ccClient.Secret)
	decodeJSON(t, rec.Body, &tok)
	if rec.Code != http.StatusOK || tok.Scope != "read write" {
		t.Fatalf("without scope: %d %+v, want scope read write", rec.Code, tok)
	}

	// The token names no user: token exchange has no upstream token to give.
	rec = e.postForm(pathToken, url.Values{"grant_type": {grantTokenExchange}, "subject_token": {tok.AccessToken},
		"subject_token_type": {tokenTypeAccessToken}}, exchanger.ID, exchanger.Secret)
	wantOAuthError(t, rec, http.StatusBadRequest, "invalid_grant")

	// Revocation by the client works as for any token.
	rec = e.postForm(pathRevoke, url.Values{"token": {tok.AccessToken}}, ccClient.ID, ccClient.Secret)
	if rec.Code != http.StatusOK || e.introspect(tok.AccessToken)["active"] != false {
		t.Fatalf("revocation: %d, token still active", rec.Code)
	}
}

func TestClientCredentialsRefusals(t *testing.T) {
	e := newAgentEnv(t)
	cases := []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		code   string
	}{
		{"a wrong secret", url.Values{}, []string{ccClient.ID, "wrong"}, 401, "invalid_client"},
		{"no client authentication", url.Values{"client_id": {ccClient.ID}}, nil, 401, "invalid_client"},
		{"a client not registered for the grant", url.Values{}, []string{resourceServer.ID, resourceServer.Secret}, 400, "unauthorized_client"},
		{"a public client", url.Values{"client_id": {publicClient.ID}}, nil, 400, "unauthorized_client"},
		{"scopes of which nothing is left", url.Values{"scope": {"admin offline_access"}}, []string{ccClient.ID, ccClient.Secret}, 400, "invalid_scope"},
		{"a malformed scope", url.Values{"scope": {"read\"x"}}, []string{ccClient.ID, ccClient.Secret}, 400, "invalid_scope"},
		{"a resource with a fragment", url.Values{"resource": {"https://tools.example.com/mcp#x"}}, []string{ccClient.ID, ccClient.Secret}, 400, "invalid_target"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("grant_type", "client_credentials")
			wantOAuthError(t, e.postForm(pathToken, tc.form, tc.basic...), tc.status, tc.code)
		})
	}
}

func TestClientCredentialsNeedsAConfidentialClient(t *testing.T) {
	_, err := NewStaticClients(StaticClient{ID: "public-agent", GrantTypes: []string{grantClientCredentials}})
	if err == nil || !strings.Contains(err.Error(), "confidential") {
		t.Fatalf("a public client_credentials client: %v, want a refusal naming confidential clients", err)
	}
}

// deviceStart asks for a device authorization as the CLI.
func (e *env) deviceStart(t *testing.T, form url.Values) deviceAuthorizationResponse {
	t.Helper()
	if form.Get("client_id") == "" {
		form.Set("client_id", deviceCLI.ID)
	}
	rec := e.postForm(pathDeviceAuthorization, form)
	if rec.Code != http.StatusOK {
		t.Fatalf("device authorization: %d %s", rec.Code, rec.Body)
	}
	var da deviceAuthorizationResponse
	decodeJSON(t, rec.Body, &da)
	return da
}

func (e *env) devicePoll(deviceCode string) *httptest.ResponseRecorder {
	return e.postForm(pathToken, url.Values{"grant_type": {grantDeviceCode}, "device_code": {deviceCode}, "client_id": {deviceCLI.ID}})
}

var textInput = regexp.MustCompile(`name="user_code" id="user-code" value="([^"]*)"`)

// deviceConfirm drives the verification page from verification_uri_complete to the
// confirmation page, and returns its form.
func (b *browser) deviceConfirm(t *testing.T, completeURI string) url.Values {
	t.Helper()
	rec := b.get(completeURI)
	if rec.Code != http.StatusOK {
		t.Fatalf("verification page: %d %s", rec.Code, rec.Body)
	}
	if rec.Header().Get("X-Frame-Options") != "DENY" || !strings.Contains(rec.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Error("the verification page may be framed")
	}
	m := textInput.FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("no user code field:\n%s", rec.Body)
	}
	form := consentForm(t, rec.Body.String())
	form.Set("user_code", m[1])
	rec = b.postForm(testIssuer+pathDevice, form)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `id="approve"`) {
		t.Fatalf("confirmation page: %d %s", rec.Code, rec.Body)
	}
	return consentForm(t, rec.Body.String())
}

// deviceApprove approves on the confirmation page, logs in upstream and returns the
// page the callback shows.
func (b *browser) deviceApprove(t *testing.T, completeURI string) *httptest.ResponseRecorder {
	t.Helper()
	form := b.deviceConfirm(t, completeURI)
	form.Set("decision", "approve")
	up := location(t, b.postForm(testIssuer+pathDevice, form))
	if up.Host != "idp.example.com" {
		t.Fatalf("approval redirected to %s, want the upstream", up)
	}
	cb := url.Values{"code": {goodUpstreamCode}, "state": {up.Query().Get("state")}}
	return b.get(testIssuer + DefaultCallbackPath + "?" + cb.Encode())
}

func TestDeviceFlowHappyPath(t *testing.T) {
	e := newAgentEnv(t)
	da := e.deviceStart(t, url.Values{"scope": {"read write"}, "resource": {agentResource}})
	if !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(da.UserCode) {
		t.Errorf("user code %q is not XXXX-XXXX from the unambiguous alphabet", da.UserCode)
	}
	if da.VerificationURI != testIssuer+pathDevice || da.VerificationURIComplete != da.VerificationURI+"?user_code="+da.UserCode ||
		da.ExpiresIn != 600 || da.Interval != 5 || !strings.HasPrefix(da.DeviceCode, prefixDevice) {
		t.Fatalf("device authorization response %+v", da)
	}
	for _, secret := range []string{da.DeviceCode, strings.ReplaceAll(da.UserCode, "-", "")} {
		if strings.Contains(e.store.recorded(), secret) {
			t.Errorf("%s reached the store in clear", secret)
		}
	}

	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "authorization_pending")
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "slow_down")
	e.clock.Advance(11 * time.Second) // the interval, 5s, and the 5s slow_down added
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "authorization_pending")

	done := e.browser().deviceApprove(t, da.VerificationURIComplete)
	if done.Code != http.StatusOK || !strings.Contains(done.Body.String(), "Device connected") {
		t.Fatalf("after the login: %d %s", done.Code, done.Body)
	}

	rec := e.devicePoll(da.DeviceCode)
	if rec.Code != http.StatusOK {
		t.Fatalf("poll after approval: %d %s", rec.Code, rec.Body)
	}
	var tok tokens
	decodeJSON(t, rec.Body, &tok)
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Scope != "read write" {
		t.Fatalf("tokens %+v", tok)
	}
	info := e.introspect(tok.AccessToken)
	if info["sub"] != "user-1" || info["client_id"] != deviceCLI.ID || info["upstream_access_token"] != "upstream-access-1" {
		t.Fatalf("introspection %v: want the user, the CLI and the user's upstream token", info)
	}
	// The refresh token works as any other.
	rec = e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {deviceCLI.ID}})
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
	}

	// A second redemption is a replay: invalid_grant, and the grant is revoked.
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "invalid_grant")
	if e.introspect(tok.AccessToken)["active"] != false {
		t.Error("the tokens of a replayed device code stay active")
	}
}

func TestDeviceFlowDeniedByTheUser(t *testing.T) {
	e := newAgentEnv(t)
	da := e.deviceStart(t, url.Values{})
	b := e.browser()
	form := b.deviceConfirm(t, da.VerificationURIComplete)
	form.Set("decision", "deny")
	rec := b.postForm(testIssuer+pathDevice, form)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Request denied") {
		t.Fatalf("deny: %d %s", rec.Code, rec.Body)
	}
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "access_denied")
	// The user code is spent: the confirmation form cannot be sent again.
	form.Set("decision", "approve")
	if rec := b.postForm(testIssuer+pathDevice, form); rec.Code != http.StatusBadRequest {
		t.Fatalf("approve after deny: %d, want 400", rec.Code)
	}
}

func TestDeviceFlowDeniedUpstream(t *testing.T) {
	e := newAgentEnv(t)
	da := e.deviceStart(t, url.Values{})
	b := e.browser()
	form := b.deviceConfirm(t, da.VerificationURIComplete)
	form.Set("decision", "approve")
	up := location(t, b.postForm(testIssuer+pathDevice, form))
	cb := url.Values{"error": {"access_denied"}, "state": {up.Query().Get("state")}}
	if rec := b.get(testIssuer + DefaultCallbackPath + "?" + cb.Encode()); rec.Code != http.StatusBadRequest {
		t.Fatalf("callback with access_denied: %d, want an error page", rec.Code)
	}
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "access_denied")
}

func TestDeviceCodeExpires(t *testing.T) {
	e := newAgentEnv(t)
	da := e.deviceStart(t, url.Values{})
	e.clock.Advance(DefaultDeviceCodeTTL)
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "expired_token")
	b := e.browser()
	rec := b.get(da.VerificationURIComplete)
	form := consentForm(t, rec.Body.String())
	form.Set("user_code", da.UserCode)
	rec = b.postForm(testIssuer+pathDevice, form)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "unknown, expired or already used") {
		t.Fatalf("an expired user code: %d %s", rec.Code, rec.Body)
	}
}

func TestDeviceAuthorizationRefusals(t *testing.T) {
	e := newAgentEnv(t)
	cases := []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		code   string
	}{
		{"an unknown client", url.Values{"client_id": {"nobody"}}, nil, 401, "invalid_client"},
		{"a client not registered for the grant", url.Values{"client_id": {publicClient.ID}}, nil, 400, "unauthorized_client"},
		{"a scope the server does not support", url.Values{"client_id": {deviceCLI.ID}, "scope": {"admin"}}, nil, 400, "invalid_scope"},
		{"a relative resource", url.Values{"client_id": {deviceCLI.ID}, "resource": {"/mcp"}}, nil, 400, "invalid_target"},
		{"a repeated scope parameter", url.Values{"client_id": {deviceCLI.ID}, "scope": {"read", "write"}}, nil, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantOAuthError(t, e.postForm(pathDeviceAuthorization, tc.form, tc.basic...), tc.status, tc.code)
		})
	}
	t.Run("a poll by another client", func(t *testing.T) {
		da := e.deviceStart(t, url.Values{})
		rec := e.postForm(pathToken, url.Values{"grant_type": {grantDeviceCode}, "device_code": {da.DeviceCode}, "client_id": {"other-cli"}})
		wantOAuthError(t, rec, 400, "invalid_grant")
		rec = e.postForm(pathToken, url.Values{"grant_type": {grantDeviceCode}, "device_code": {da.DeviceCode}}, exchanger.ID, exchanger.Secret)
		wantOAuthError(t, rec, 400, "unauthorized_client")
	})
	t.Run("a malformed device code", func(t *testing.T) {
		wantOAuthError(t, e.devicePoll("mcp_dc_nonsense"), 400, "invalid_grant")
	})
	t.Run("no device code", func(t *testing.T) {
		wantOAuthError(t, e.devicePoll(""), 400, "invalid_request")
	})
}

func TestDeviceFlowIsOffByDefault(t *testing.T) {
	e := newEnv(t)
	if rec := e.postForm(pathDeviceAuthorization, url.Values{"client_id": {publicClient.ID}}); rec.Code != http.StatusNotFound {
		t.Errorf("device authorization endpoint without the option: %d, want 404", rec.Code)
	}
	if rec := e.get(pathDevice); rec.Code != http.StatusNotFound {
		t.Errorf("verification page without the option: %d, want 404", rec.Code)
	}
	if m := e.srv.Metadata(); m.DeviceAuthorizationEndpoint != "" || strings.Contains(strings.Join(m.GrantTypesSupported, " "), "device_code") {
		t.Errorf("metadata advertises the device flow while it is off: %+v", m)
	}
	on := newAgentEnv(t).srv.Metadata()
	if on.DeviceAuthorizationEndpoint != testIssuer+pathDeviceAuthorization || !strings.Contains(strings.Join(on.GrantTypesSupported, " "), grantDeviceCode) {
		t.Errorf("metadata with the device flow on: %+v", on)
	}
}

func TestDeviceVerificationPageDefences(t *testing.T) {
	e := newAgentEnv(t, func(o *Options) { o.DeviceAuthorization.VerificationRateLimit = RateLimit{Burst: 3, Every: time.Hour} })
	da := e.deviceStart(t, url.Values{})
	t.Run("a form without its CSRF token is refused", func(t *testing.T) {
		b := e.browser()
		b.get(da.VerificationURIComplete) // the flow cookie
		rec := b.postForm(testIssuer+pathDevice, url.Values{"user_code": {da.UserCode}})
		if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), `id="approve"`) {
			t.Fatalf("no CSRF token: %d", rec.Code)
		}
		rec = b.postForm(testIssuer+pathDevice, url.Values{"user_code": {da.UserCode}, "decision": {"approve"}, "csrf_token": {"x"}})
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("approval with a forged CSRF token: %d", rec.Code)
		}
	})
	t.Run("a confirmation form from another browser is refused", func(t *testing.T) {
		form := e.browser().deviceConfirm(t, da.VerificationURIComplete)
		form.Set("decision", "approve")
		if rec := e.browser().postForm(testIssuer+pathDevice, form); rec.Code != http.StatusBadRequest {
			t.Fatalf("another browser's form: %d, want 400", rec.Code)
		}
	})
	t.Run("codes typed in any case and grouping are accepted; guessing is rate limited", func(t *testing.T) {
		e.srv.deviceGuesses = newLimiter(RateLimit{Burst: 3, Every: time.Hour}, e.clock.Now)
		b := e.browser()
		rec := b.get(testIssuer + pathDevice)
		form := consentForm(t, rec.Body.String())
		form.Set("user_code", strings.ToLower(strings.ReplaceAll(da.UserCode, "-", " ")))
		if rec := b.postForm(testIssuer+pathDevice, form); rec.Code != http.StatusOK {
			t.Fatalf("lower case with a space: %d", rec.Code)
		}
		form.Set("user_code", "BCDF-GHJK")
		if rec := b.postForm(testIssuer+pathDevice, form); rec.Code != http.StatusBadRequest {
			t.Fatalf("an unknown code: %d, want 400", rec.Code)
		}
		form.Set("user_code", "AEIO-U123")
		if rec := b.postForm(testIssuer+pathDevice, form); rec.Code != http.StatusBadRequest {
			t.Fatalf("a malformed code: %d, want 400", rec.Code)
		}
		form.Set("user_code", da.UserCode)
		rec = b.postForm(testIssuer+pathDevice, form)
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("the fourth try in a row: %d, want 429 with Retry-After", rec.Code)
		}
	})
}

func TestUserCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		c := newUserCode()
		if n, ok := normalizeUserCode(formatUserCode(c)); !ok || n != c {
			t.Fatalf("code %q does not read back: %q %v", c, n, ok)
		}
		seen[c] = true
	}
	if len(seen) < 199 {
		t.Errorf("200 codes, %d distinct", len(seen))
	}
	for _, bad := range []string{"", "BCDF", "BCDF-GHJKL", "BCDF-GHJ1", "BCDF-GHJÄ", "AAAA-AAAA"} {
		if _, ok := normalizeUserCode(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestDeviceFlowRefusedByTheAccessRules: a user the access rules refuse sees the
// refused page (with nowhere to return to: a device has no redirect URI), and the
// device hears access_denied; nothing is issued.
func TestDeviceFlowRefusedByTheAccessRules(t *testing.T) {
	e := newAgentEnv(t, func(o *Options) {
		o.Access = access.New(config.Access{Allow: config.AccessRules{Users: []string{"someone-else"}}}, upstream.TypeOIDC)
	})
	da := e.deviceStart(t, url.Values{})
	rec := e.browser().deviceApprove(t, da.VerificationURIComplete)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "not allowed to sign in") ||
		strings.Contains(rec.Body.String(), `id="continue"`) {
		t.Fatalf("callback of a refused user: %d %s", rec.Code, rec.Body)
	}
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "access_denied")
	if _, err := e.store.GetUpstreamToken(t.Context(), "user-1"); err == nil {
		t.Error("the refused user's upstream token was stored")
	}
}

// orgUpstream is the fake upstream with GitHub's membership capability, failing while
// err is set.
type orgUpstream struct {
	*fakeUpstream
	mu   sync.Mutex
	err  error
	orgs []string
}

func (u *orgUpstream) Memberships(context.Context, string, upstream.MembershipQuery) (*upstream.Memberships, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err != nil {
		return nil, u.err
	}
	return &upstream.Memberships{Organizations: u.orgs}, nil
}

func (u *orgUpstream) MembershipScope() string { return "read:org" }

func (u *orgUpstream) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.err = err
}

// TestDeviceStaysPendingWhenTheMembershipCheckFails: a check that could not be made
// (GitHub down) is not a refusal. The user sees why, the device keeps hearing
// authorization_pending rather than access_denied, and once the upstream answers the
// same user code signs the device in.
func TestDeviceStaysPendingWhenTheMembershipCheckFails(t *testing.T) {
	var up *orgUpstream
	e := newAgentEnv(t, func(o *Options) {
		up = &orgUpstream{fakeUpstream: o.Upstream.(*fakeUpstream), orgs: []string{"acme"}}
		o.Upstream = up
		o.Access = access.New(config.Access{Allow: config.AccessRules{GitHubOrganizations: []string{"acme"}}}, upstream.TypeGitHub)
	})
	da := e.deviceStart(t, url.Values{})

	up.fail(fmt.Errorf("%w: %w: 502 from the API", upstream.ErrMembership, upstream.ErrUnavailable))
	rec := e.browser().deviceApprove(t, da.VerificationURIComplete)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "try again later") ||
		!strings.Contains(rec.Body.String(), "enter the code your device shows at "+testIssuer+pathDevice+" once more") {
		t.Fatalf("callback while the membership check fails: %d %s", rec.Code, rec.Body)
	}
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "authorization_pending")
	if _, err := e.store.GetUpstreamToken(t.Context(), "user-1"); err == nil {
		t.Error("the unchecked user's upstream token was stored")
	}

	up.fail(nil)
	e.clock.Advance(6 * time.Second) // past the polling interval
	if rec := e.browser().deviceApprove(t, da.VerificationURIComplete); rec.Code != http.StatusOK {
		t.Fatalf("callback once the upstream answers: %d %s", rec.Code, rec.Body)
	}
	rec = e.devicePoll(da.DeviceCode)
	if rec.Code != http.StatusOK {
		t.Fatalf("poll after approval: %d %s", rec.Code, rec.Body)
	}
}

// TestDeviceUserCodeComesBackWhenTheUpstreamFails: an upstream that does not answer
// the code exchange gives the user code back too, and the next try signs in.
func TestDeviceUserCodeComesBackWhenTheUpstreamFails(t *testing.T) {
	e := newAgentEnv(t)
	da := e.deviceStart(t, url.Values{})
	e.up.exchangeErr = fmt.Errorf("%w: %w", upstream.ErrExchange, context.DeadlineExceeded)
	rec := e.browser().deviceApprove(t, da.VerificationURIComplete)
	if rec.Code < 500 || !strings.Contains(rec.Body.String(), "enter the code your device shows") {
		t.Fatalf("callback while the upstream fails: %d %s", rec.Code, rec.Body)
	}
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "authorization_pending")
	e.up.exchangeErr = nil
	e.clock.Advance(6 * time.Second)
	if rec := e.browser().deviceApprove(t, da.VerificationURIComplete); rec.Code != http.StatusOK {
		t.Fatalf("callback once the upstream answers: %d %s", rec.Code, rec.Body)
	}
	if rec := e.devicePoll(da.DeviceCode); rec.Code != http.StatusOK {
		t.Fatalf("poll after approval: %d %s", rec.Code, rec.Body)
	}
}

// testStore records and can fail the agent operations too (helpers_test.go has the
// rest).

func (s *testStore) IssueGrant(ctx context.Context, g store.Grant, p store.TokenPair) error {
	if err := s.before("IssueGrant", g, p); err != nil {
		return err
	}
	return s.Store.IssueGrant(ctx, g, p)
}

func (s *testStore) SaveDevice(ctx context.Context, ref store.DeviceRef, uc string, d store.DeviceAuthorization, iv time.Duration) error {
	if err := s.before("SaveDevice", ref, uc, d); err != nil {
		return err
	}
	return s.Store.SaveDevice(ctx, ref, uc, d, iv)
}

func (s *testStore) GetUserCode(ctx context.Context, uc string) (store.DeviceRef, store.DeviceAuthorization, error) {
	if err := s.before("GetUserCode", uc); err != nil {
		return store.DeviceRef{}, store.DeviceAuthorization{}, err
	}
	return s.Store.GetUserCode(ctx, uc)
}

func (s *testStore) TakeUserCode(ctx context.Context, uc string) (store.DeviceRef, store.DeviceAuthorization, error) {
	if err := s.before("TakeUserCode", uc); err != nil {
		return store.DeviceRef{}, store.DeviceAuthorization{}, err
	}
	return s.Store.TakeUserCode(ctx, uc)
}

func (s *testStore) DenyDevice(ctx context.Context, ref store.DeviceRef) error {
	if err := s.before("DenyDevice", ref); err != nil {
		return err
	}
	return s.Store.DenyDevice(ctx, ref)
}

func (s *testStore) PollDevice(ctx context.Context, ref store.DeviceRef) (store.DevicePoll, error) {
	if err := s.before("PollDevice", ref); err != nil {
		return store.DevicePoll{}, err
	}
	return s.Store.PollDevice(ctx, ref)
}

// TestAgentGrantsDuringAStoreOutage: a store outage is 503 temporarily_unavailable at
// every agent endpoint (so the device keeps polling, the agent retries), and an error
// page on the verification page; never a 500 or an expired_token.
func TestAgentGrantsDuringAStoreOutage(t *testing.T) {
	e := newAgentEnv(t)
	da := e.deviceStart(t, url.Values{})
	b := e.browser()
	page := b.get(da.VerificationURIComplete)
	e.store.down.Store(true)
	wantOAuthError(t, e.devicePoll(da.DeviceCode), http.StatusServiceUnavailable, "temporarily_unavailable")
	wantOAuthError(t, e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}}, ccClient.ID, ccClient.Secret),
		http.StatusServiceUnavailable, "temporarily_unavailable")
	wantOAuthError(t, e.postForm(pathDeviceAuthorization, url.Values{"client_id": {deviceCLI.ID}}),
		http.StatusServiceUnavailable, "temporarily_unavailable")
	form := consentForm(t, page.Body.String())
	form.Set("user_code", da.UserCode)
	if rec := b.postForm(testIssuer+pathDevice, form); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("verification page during an outage: %d, want 503", rec.Code)
	}
	e.store.down.Store(false)
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "authorization_pending")
}

package authserver

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/memory"
)

// agentMods registers the agent clients and turns the device flow on, for flowEnv.
func agentMods(t *testing.T) func(*Options) {
	return func(o *Options) {
		reg, err := NewStaticClients(resourceServer, ccClient, deviceCLI, otherCLI, exchanger)
		if err != nil {
			t.Fatal(err)
		}
		o.Clients = reg
		o.DeviceAuthorization.Enabled = true
	}
}

// runAgentFlows runs both grants of agents without a browser over HTTP against real
// servers and the fake OIDC provider: client_credentials with x/oauth2's
// clientcredentials package, and the device flow with x/oauth2's DeviceAuth and
// DeviceAccessToken, the verification page driven like a browser. It returns every
// secret handed out.
func runAgentFlows(t *testing.T, fe *flowEnv) flowSecrets {
	t.Helper()
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, fe.httpClient())
	meta := fe.discover(t)
	if meta.DeviceAuthorizationEndpoint != fe.issuer+pathDeviceAuthorization {
		t.Fatalf("metadata device_authorization_endpoint %q", meta.DeviceAuthorizationEndpoint)
	}

	cc := clientcredentials.Config{ClientID: ccClient.ID, ClientSecret: ccClient.Secret, TokenURL: meta.TokenEndpoint,
		Scopes: []string{"write"}, EndpointParams: url.Values{"resource": {flowResource}}}
	machine, err := cc.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials: %v", err)
	}
	if machine.RefreshToken != "" || machine.Extra("scope") != "write" {
		t.Fatalf("client_credentials token %+v", machine)
	}
	info := fe.introspect(t, meta, machine.AccessToken)
	if !info.Active || info.Subject != ccClient.ID || info.ClientID != ccClient.ID ||
		strings.Join(info.Audience, " ") != flowResource || info.UpstreamAccessToken != "" {
		t.Fatalf("introspection of the client_credentials token %+v", info)
	}

	cfg := &oauth2.Config{ClientID: deviceCLI.ID, Scopes: []string{"read", "write"},
		Endpoint: oauth2.Endpoint{DeviceAuthURL: meta.DeviceAuthorizationEndpoint, TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	da, err := cfg.DeviceAuth(ctx, oauth2.SetAuthURLParam("resource", flowResource))
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	poll := func() *http.Response {
		t.Helper()
		resp, err := fe.httpClient().PostForm(meta.TokenEndpoint, url.Values{"grant_type": {grantDeviceCode},
			"device_code": {da.DeviceCode}, "client_id": {deviceCLI.ID}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if body := readBody(t, poll()); !strings.Contains(body, `"authorization_pending"`) {
		t.Fatalf("first poll: %s", body)
	}
	if body := readBody(t, poll()); !strings.Contains(body, `"slow_down"`) {
		t.Fatalf("a poll at once: %s", body)
	}

	if page := fe.deviceBrowse(t, da.VerificationURIComplete, "approve"); !strings.Contains(page, "Device connected") {
		t.Fatalf("the browser ended on:\n%s", page)
	}
	da.Interval = 1 // the approval is redeemed whatever the pace: no need to wait 10s
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if tok.RefreshToken == "" || tok.Extra("scope") != "read write" {
		t.Fatalf("device token %+v", tok)
	}
	user := fe.introspect(t, meta, tok.AccessToken)
	if !user.Active || user.Subject != "alice" || user.ClientID != deviceCLI.ID ||
		strings.Join(user.Audience, " ") != flowResource || !fe.idp.ValidAccessToken(user.UpstreamAccessToken) {
		t.Fatalf("introspection of the device token %+v", user)
	}
	if body := readBody(t, poll()); !strings.Contains(body, `"invalid_grant"`) {
		t.Fatalf("a second redemption: %s", body)
	}
	if fe.introspect(t, meta, tok.AccessToken).Active {
		t.Error("the tokens of a replayed device code stay active")
	}

	denied, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fe.deviceBrowse(t, denied.VerificationURIComplete, "deny")
	denied.Interval = 1
	if _, err := cfg.DeviceAccessToken(ctx, denied); err == nil || !strings.Contains(err.Error(), "access_denied") {
		t.Fatalf("a denied device: %v, want access_denied", err)
	}
	return flowSecrets{machine.AccessToken, da.DeviceCode, strings.ReplaceAll(da.UserCode, "-", ""), tok.AccessToken,
		tok.RefreshToken, user.UpstreamAccessToken}
}

// deviceBrowse plays the user: opens the verification URI, sends the code, then
// approves or denies; an approval follows the redirects through the upstream login and
// back. It returns the last page.
func (fe *flowEnv) deviceBrowse(t *testing.T, completeURI, decision string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := *fe.httpClient()
	c.Jar = jar
	resp, err := c.Get(completeURI)
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, resp)
	m := textInput.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("verification page: %d %s", resp.StatusCode, page)
	}
	form := consentForm(t, page)
	form.Set("user_code", m[1])
	if resp, err = c.PostForm(fe.issuer+pathDevice, form); err != nil {
		t.Fatal(err)
	}
	page = readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirmation page: %d %s", resp.StatusCode, page)
	}
	form = consentForm(t, page)
	form.Set("decision", decision)
	if resp, err = c.PostForm(fe.issuer+pathDevice, form); err != nil {
		t.Fatal(err)
	}
	page = readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after %s: %d at %s: %s", decision, resp.StatusCode, resp.Request.URL, page)
	}
	return page
}

func TestAgentFlowsOnMemory(t *testing.T) {
	mem := memory.New(memory.Options{Prefix: "agents"})
	t.Cleanup(func() { _ = mem.Close() })
	rec := &testStore{Store: mem}
	fe := newFlowEnv(t, []store.Store{rec}, true, agentMods(t))
	secrets := runAgentFlows(t, fe)
	seen := rec.recorded()
	for _, s := range secrets {
		if strings.Contains(seen, s) {
			t.Errorf("secret %.10s... reached the store in clear", s)
		}
	}
}

func TestAgentFlowsOnRedis(t *testing.T) {
	stores, raw := startRedisStores(t, 1)
	fe := newFlowEnv(t, stores, true, agentMods(t))
	secrets := runAgentFlows(t, fe)
	dump := dumpRedis(t, raw)
	for _, s := range secrets {
		if strings.Contains(dump, s) {
			t.Errorf("secret %.10s... is in Redis in clear", s)
		}
	}
}

// TestAgentFlowsAcrossTwoServersSharingRedis alternates replicas at every request:
// the device authorization, the verification page, its confirmation, the upstream
// callback and the polls each land on the other server from the step before.
func TestAgentFlowsAcrossTwoServersSharingRedis(t *testing.T) {
	stores, _ := startRedisStores(t, 2)
	fe := newFlowEnv(t, stores, true, agentMods(t))
	runAgentFlows(t, fe)
	if a, b := fe.served[0].Load(), fe.served[1].Load(); a < 5 || b < 5 {
		t.Fatalf("requests per server: %d and %d", a, b)
	}
}

// TestDeviceVerificationPageInChromium drives the verification page in a real
// browser: the code comes filled in from verification_uri_complete, Continue shows
// the confirmation, Approve goes through the upstream login and back, and the
// device's next poll gets its tokens. Its CSP (form-action, frame-ancestors) is
// enforced here as it is for users.
func TestDeviceVerificationPageInChromium(t *testing.T) {
	ctx := newChromium(t)
	mem := memory.New(memory.Options{Prefix: "chromium-device"})
	t.Cleanup(func() { _ = mem.Close() })
	fe := newFlowEnv(t, []store.Store{mem}, true, agentMods(t))
	meta := fe.discover(t)
	resp, err := fe.httpClient().PostForm(meta.DeviceAuthorizationEndpoint, url.Values{"client_id": {deviceCLI.ID}, "scope": {"read"}})
	if err != nil {
		t.Fatal(err)
	}
	var da deviceAuthorizationResponse
	decodeJSON(t, strings.NewReader(readBody(t, resp)), &da)

	err = chromedp.Do(ctx,
		chromedp.Navigate(da.VerificationURIComplete),
		chromedp.WaitVisible(chromedp.ID("continue")),
		chromedp.Click(chromedp.ID("continue")),
		chromedp.WaitVisible(chromedp.ID("approve")),
	)
	if err != nil {
		t.Fatal(err)
	}
	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("user-code")))
	if err != nil {
		t.Fatal(err)
	}
	client, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("client-name")))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.ID("done-title"))); err != nil {
		t.Fatal(err)
	}
	if shown != da.UserCode || client != deviceCLI.Name {
		t.Errorf("confirmation page shows code %q for %q, want %q for %q", shown, client, da.UserCode, deviceCLI.Name)
	}
	resp, err = fe.httpClient().PostForm(meta.TokenEndpoint, url.Values{"grant_type": {grantDeviceCode},
		"device_code": {da.DeviceCode}, "client_id": {deviceCLI.ID}})
	if err != nil {
		t.Fatal(err)
	}
	var tok tokens
	body := readBody(t, resp)
	decodeJSON(t, strings.NewReader(body), &tok)
	if resp.StatusCode != http.StatusOK || !fe.introspect(t, meta, tok.AccessToken).Active {
		t.Fatalf("poll after approval in the browser: %d %s", resp.StatusCode, body)
	}
}

// TestAgentRefusalsOnRedis runs the error paths that touch the store on Redis: an
// expired device code, a device code polled by another client, a denied device, and
// a client_credentials request of which no scope is left.
func TestAgentRefusalsOnRedis(t *testing.T) {
	stores, _ := startRedisStores(t, 1)
	fe := newFlowEnv(t, stores, true, agentMods(t), func(o *Options) { o.DeviceAuthorization.CodeTTL = time.Second })
	meta := fe.discover(t)
	post := func(endpoint string, form url.Values, basic ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if len(basic) == 2 {
			req.SetBasicAuth(basic[0], basic[1])
		}
		resp, err := fe.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, readBody(t, resp)
	}
	start := func() deviceAuthorizationResponse {
		t.Helper()
		_, body := post(meta.DeviceAuthorizationEndpoint, url.Values{"client_id": {deviceCLI.ID}})
		var da deviceAuthorizationResponse
		decodeJSON(t, strings.NewReader(body), &da)
		return da
	}
	poll := func(da deviceAuthorizationResponse, client string) string {
		t.Helper()
		code, body := post(meta.TokenEndpoint, url.Values{"grant_type": {grantDeviceCode}, "device_code": {da.DeviceCode}, "client_id": {client}})
		if code != http.StatusBadRequest {
			t.Fatalf("poll: %d %s, want 400", code, body)
		}
		return body
	}

	expiring := start()
	other := start()
	if body := poll(other, otherCLI.ID); !strings.Contains(body, `"invalid_grant"`) {
		t.Errorf("another client's device code: %s", body)
	}
	denied := start()
	fe.deviceBrowse(t, denied.VerificationURIComplete, "deny")
	if body := poll(denied, deviceCLI.ID); !strings.Contains(body, `"access_denied"`) {
		t.Errorf("a denied device: %s", body)
	}
	time.Sleep(1100 * time.Millisecond)
	if body := poll(expiring, deviceCLI.ID); !strings.Contains(body, `"expired_token"`) {
		t.Errorf("an expired device code: %s", body)
	}

	code, body := post(meta.TokenEndpoint, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, ccClient.ID, ccClient.Secret)
	if code != http.StatusBadRequest || !strings.Contains(body, `"invalid_scope"`) {
		t.Errorf("client_credentials with no scope left: %d %s", code, body)
	}
}

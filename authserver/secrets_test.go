package authserver

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/resource"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/memory"
	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

// Secrets at rest and in logs. DESIGN.md: "Tokens and client secrets are stored hashed;
// upstream tokens are encrypted at rest"; RFC 9700 §4.14 (refresh token protection)
// and RFC 6819 §5.1.4.1.3 (no cleartext storage of credentials). Both tests run every
// step of a login that hands out a secret, plus the failures that make the server log,
// then search for each secret, in clear and in the encodings a careless store or
// logger would use.

// TestRedisHoldsNoSecretInClearAfterAWholeFlow dumps every Redis key and value after
// the flows of secretsFlow.
func TestRedisHoldsNoSecretInClearAfterAWholeFlow(t *testing.T) {
	stores, raw := startRedisStores(t, 1)
	secrets := secretsFlow(t, stores[0], slog.New(slog.DiscardHandler))
	dump := dumpRedis(t, raw)
	// Every grant of the flows ends revoked (the last one by the upstream's refusal),
	// so grants show as their keys' hash tags.
	if !strings.Contains(dump, ":{g:") || !strings.Contains(dump, ":upstream:") || !strings.Contains(dump, ":client:") {
		t.Fatalf("the dump lacks grants, upstream tokens or clients; the flows did not reach Redis:\n%.2000s", dump)
	}
	secrets.mustNotAppearIn(t, "Redis", dump)
}

// TestLogsHoldNoSecretDuringAWholeFlowAndItsFailures captures the server's and the
// resource package's logs at debug level through the flows of secretsFlow, which
// include the failures that log (a replayed code, a reused refresh token, a failed
// upstream refresh, a refused introspection caller).
func TestLogsHoldNoSecretDuringAWholeFlowAndItsFailures(t *testing.T) {
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mem := memory.New(memory.Options{Prefix: "logs"})
	t.Cleanup(func() { _ = mem.Close() })
	secrets := secretsFlow(t, mem, logger)
	for _, want := range []string{"authorization code replayed", "refresh token reused", "no usable upstream token", "token introspection failed"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the logs lack %q: the failure paths did not run", want)
		}
	}
	secrets.mustNotAppearIn(t, "the logs", logs.String())
}

// namedSecrets maps a description to a secret value.
type namedSecrets map[string]string

// mustNotAppearIn fails for every secret found in haystack: in clear, base64 or hex
// encoded, and for our tokens their random part alone.
func (ns namedSecrets) mustNotAppearIn(t *testing.T, where, haystack string) {
	t.Helper()
	for name, s := range ns {
		if len(s) < 8 {
			t.Fatalf("%s: %q is too short to search for", name, s)
		}
		variants := map[string]string{
			"in clear":          s,
			"base64":            base64.StdEncoding.EncodeToString([]byte(s)),
			"unpadded base64":   base64.RawStdEncoding.EncodeToString([]byte(s)),
			"base64url":         base64.RawURLEncoding.EncodeToString([]byte(s)),
			"hex":               hex.EncodeToString([]byte(s)),
			"URL-query-escaped": url.QueryEscape(s),
		}
		if tokenKind(s) != "" || strings.HasPrefix(s, prefixSecret) {
			variants["random part"] = s[len(s)-randomPartLen:]
		}
		for how, v := range variants {
			if strings.Contains(haystack, v) {
				t.Errorf("%s: found the %s (%s)", where, name, how)
			}
		}
	}
}

// secretsFlow runs, on one Server over st logging to logger: a public client's whole
// flow (runFlow: register, consent, code, tokens, introspection with an upstream
// refresh, refresh, revoke), then a confidential client's, with the failures that log.
// It returns every secret that was handed out or sent upstream.
func secretsFlow(t *testing.T, st store.Store, logger *slog.Logger) namedSecrets {
	t.Helper()
	fe := newFlowEnv(t, []store.Store{st}, true)
	rec := &upstreamTokenRecorder{next: fe.idp.Client().Transport}
	ucfg := fe.idp.OIDCConfig(fe.issuer + DefaultCallbackPath)
	ucfg.HTTPClient = &http.Client{Transport: rec}
	prov, err := upstream.New(t.Context(), ucfg)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := NewStaticClients(resourceServer)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{
		Issuer: fe.issuer, ScopesSupported: []string{"read", "write"}, DefaultScopes: []string{"read"},
		DynamicRegistration: true, Store: st, Upstream: prov, MasterKey: testKey, Clients: reg, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	fe.servers[0] = srv // before any request
	secrets := namedSecrets{"master key": string(testKey), "upstream client secret": fe.idp.ClientSecret}

	names := []string{"code", "access token", "refresh token", "rotated access token", "rotated refresh token",
		"upstream access token", "refreshed upstream access token", "PKCE verifier"}
	for i, s := range runFlow(t, fe) {
		name := fmt.Sprintf("secret #%d", i)
		if i < len(names) {
			name = names[i]
		}
		secrets["public client's "+name] = s
	}

	// A confidential client: its secret, a login that records the upstream state and
	// the browser's cookies, and its tokens.
	meta := fe.discover(t)
	resp, err := fe.httpClient().Post(meta.RegistrationEndpoint, "application/json", strings.NewReader(
		`{"redirect_uris":["`+flowRedirect+`"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"client_secret_basic"}`))
	if err != nil {
		t.Fatal(err)
	}
	var client registration
	if err := json.Unmarshal([]byte(readBody(t, resp)), &client); err != nil || client.ClientSecret == "" {
		t.Fatalf("register a confidential client: %v %+v", err, client)
	}
	secrets["client secret"] = client.ClientSecret
	confidentialLogin := func(n int) (url.Values, tokens) {
		p := newPKCE()
		secrets[fmt.Sprintf("PKCE verifier #%d", n)] = p.verifier
		q := url.Values{"client_id": {client.ClientID}, "redirect_uri": {flowRedirectUsed}, "response_type": {"code"}, "state": {"s"},
			"code_challenge": {p.challenge}, "code_challenge_method": {"S256"}, "scope": {"read write"}, "resource": {flowResource}}
		back, state, cookies := fe.browseRecording(t, meta.AuthorizationEndpoint+"?"+q.Encode())
		secrets[fmt.Sprintf("upstream state #%d", n)] = state
		for _, c := range cookies {
			secrets[fmt.Sprintf("cookie %s #%d", c.Name, n)] = c.Value
		}
		code := back.Query().Get("code")
		secrets[fmt.Sprintf("authorization code #%d", n)] = code
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {flowRedirectUsed}, "code_verifier": {p.verifier}}
		tok := fe.tokenRequest(t, meta, form, client.ClientID, client.ClientSecret, http.StatusOK)
		secrets[fmt.Sprintf("access token #%d", n)], secrets[fmt.Sprintf("refresh token #%d", n)] = tok.AccessToken, tok.RefreshToken
		return form, tok
	}
	refresh := func(rt, secret string, status int) tokens {
		return fe.tokenRequest(t, meta, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, client.ClientID, secret, status)
	}

	// A login, a refresh, and the resource side (logging to the same logger)
	// validating the token and meeting a refused introspection caller.
	_, first := confidentialLogin(1)
	second := refresh(first.RefreshToken, client.ClientSecret, http.StatusOK)
	secrets["rotated access token"], secrets["rotated refresh token"] = second.AccessToken, second.RefreshToken
	v := func(secret string) *resource.Verifier {
		v, err := resource.New(resource.Config{Resource: flowResource, AuthorizationServers: []string{fe.issuer},
			ClientID: resourceServer.ID, ClientSecret: secret, HTTPClient: fe.httpClient(), Logger: logger, CacheTTL: -1})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := v(resourceServer.Secret).Verify(t.Context(), second.AccessToken); err != nil {
		t.Fatalf("verify at the resource: %v", err)
	}
	secrets["wrong introspection secret"] = "wrong-rs-secret-value"
	if _, err := v("wrong-rs-secret-value").Verify(t.Context(), second.AccessToken); err == nil {
		t.Fatal("a wrong introspection secret was accepted")
	}

	// Failures that log: a wrong client secret, a reused refresh token, a replayed
	// code, a forged upstream state, an upstream token that cannot be refreshed (which
	// revokes the last grant).
	secrets["wrong client secret"] = client.ClientSecret + "x"
	refresh(second.RefreshToken, client.ClientSecret+"x", http.StatusUnauthorized)
	refresh(first.RefreshToken, client.ClientSecret, http.StatusBadRequest)
	form, _ := confidentialLogin(2)
	fe.tokenRequest(t, meta, form, client.ClientID, client.ClientSecret, http.StatusBadRequest)
	forged := randomString(secretBytes)
	secrets["forged upstream state"] = forged
	if resp, err := fe.httpClient().Get(fe.issuer + DefaultCallbackPath + "?code=x&state=" + forged); err == nil {
		readBody(t, resp)
	}
	last := login(t, fe, "")
	secrets["last access token"], secrets["last refresh token"] = last.AccessToken, last.RefreshToken
	fe.idp.RevokeRefreshTokens()
	fe.idp.ExpireAccessTokens()
	fe.introspect(t, meta, last.AccessToken)

	for i, s := range rec.tokens() {
		secrets[fmt.Sprintf("upstream token #%d", i)] = s
	}
	return secrets
}

// browseRecording is flowEnv.browse that also returns the state sent upstream and the
// cookies the server set.
func (fe *flowEnv) browseRecording(t *testing.T, authURL string) (back *url.URL, upstreamState string, cookies []*http.Cookie) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := *fe.httpClient()
	c.Jar = jar
	idp, _ := url.Parse(fe.idp.URL)
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		switch req.URL.Host {
		case idp.Host:
			upstreamState = req.URL.Query().Get("state")
		case flowRedirectHost:
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	form := consentForm(t, readBody(t, resp))
	form.Set("decision", "approve")
	resp, err = c.PostForm(fe.issuer+pathConsent, form)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	issuer, _ := url.Parse(fe.issuer)
	cookies = jar.Cookies(issuer)
	if back == nil || upstreamState == "" || len(cookies) < 2 {
		t.Fatalf("login ended at %v with upstream state %q and %d cookies", back, upstreamState, len(cookies))
	}
	return back, upstreamState, cookies
}

// tokenRequest posts a token request with Basic credentials and checks the status.
func (fe *flowEnv) tokenRequest(t *testing.T, m Metadata, form url.Values, id, secret string, status int) tokens {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, m.TokenEndpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := fe.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("token request: %d %s, want %d", resp.StatusCode, body, status)
	}
	var tok tokens
	_ = json.Unmarshal([]byte(body), &tok)
	return tok
}

// upstreamTokenRecorder records every token the upstream's token endpoint hands out.
type upstreamTokenRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (r *upstreamTokenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || req.URL.Path != upstreamtest.PathToken {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		r.mu.Lock()
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if s, _ := m[k].(string); s != "" {
				r.seen = append(r.seen, s)
			}
		}
		r.mu.Unlock()
	}
	return resp, nil
}

func (r *upstreamTokenRecorder) tokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		panic("no upstream token recorded")
	}
	return append([]string(nil), r.seen...)
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

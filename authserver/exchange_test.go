package authserver

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	redisstore "github.com/mcpauth/mcpauth/authserver/store/redis"
	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// The MCP servers of the exchange tests: vaultRS serves mcpResource; otherRS serves
// another resource.
const (
	mcpResource   = "https://mcp.example.com/mcp"
	otherResource = "https://other.example.com/mcp"
)

var (
	vaultRS = StaticClient{ID: "vault-server", Secret: "vault-secret", RedirectURIs: []string{webRedirect}, Resources: []string{"HTTPS://MCP.example.com/mcp"}}
	otherRS = StaticClient{ID: "other-vault", Secret: "other-vault-secret", RedirectURIs: []string{webRedirect}, Resources: []string{otherResource}}
)

// newExchangeEnv is newEnv with the two exchanging MCP servers registered and the log
// kept in logs.
func newExchangeEnv(t *testing.T, logs *bytes.Buffer, mods ...func(*Options)) *env {
	t.Helper()
	reg, err := NewStaticClients(publicClient, trustedClient, confClient, resourceServer, vaultRS, otherRS)
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, append([]func(*Options){func(o *Options) {
		o.Clients = reg
		if logs != nil {
			o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		}
	}}, mods...)...)
}

// issueFor runs a login of the trusted client for resource and returns its tokens.
func (e *env) issueFor(resource string) tokens {
	e.t.Helper()
	p := newPKCE()
	extra := url.Values{}
	if resource != "" {
		extra.Set("resource", resource)
	}
	code := e.code(trustedClient.ID, webRedirect, p, extra)
	return e.exchange(trustedClient.ID, webRedirect, code, p)
}

// exchangeForm is a valid exchange of subject for the upstream token.
func exchangeForm(subject string) url.Values {
	return url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {subject},
		"subject_token_type":   {tokenTypeAccessToken},
		"requested_token_type": {tokenTypeAccessToken},
		"audience":             {"fakeidp"},
	}
}

func (e *env) exchangeAs(c StaticClient, form url.Values) *httptest.ResponseRecorder {
	return e.postForm(pathToken, form, c.ID, c.Secret)
}

type exchangeAnswer struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       *int64 `json:"expires_in"`
	RefreshToken    string `json:"refresh_token"`
	Error           string `json:"error"`
	Description     string `json:"error_description"`
}

func decodeExchange(t *testing.T, rec *httptest.ResponseRecorder) exchangeAnswer {
	t.Helper()
	var a exchangeAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("decode %s: %v", rec.Body.String(), err)
	}
	return a
}

func exchangeCount(e *env, result string) float64 {
	return metricValue(e.t, e.srv, `mcpauth_token_exchanges_total{result="`+result+`"}`)
}

// metricValue reads one series from /metrics; 0 when it is not there yet.
func metricValue(t *testing.T, srv *Server, series string) float64 {
	t.Helper()
	rec := httpRecorder(srv.MetricsHandler(), "/metrics")
	for line := range strings.Lines(rec.Body.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

func TestTokenExchangeReturnsTheUpstreamToken(t *testing.T) {
	var logs bytes.Buffer
	e := newExchangeEnv(t, &logs)
	e.up.token.Scope = "repo read:user"
	tok := e.issueFor(mcpResource)

	rec := e.exchangeAs(vaultRS, exchangeForm(tok.AccessToken))
	if rec.Code != http.StatusOK {
		t.Fatalf("exchange: %d %s", rec.Code, rec.Body.String())
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	a := decodeExchange(t, rec)
	if a.AccessToken != "upstream-access-1" || a.IssuedTokenType != tokenTypeAccessToken || a.TokenType != "Bearer" {
		t.Errorf("answer %+v, want the upstream access token, issued as an access token, Bearer", a)
	}
	if !strings.Contains(rec.Body.String(), `"scope":"repo read:user"`) {
		t.Errorf("answer %s, want the upstream token's scope", rec.Body.String())
	}
	if a.ExpiresIn == nil || *a.ExpiresIn != 3600 {
		t.Errorf("expires_in %v, want 3600 (the upstream token's hour)", a.ExpiresIn)
	}
	if a.RefreshToken != "" || strings.Contains(rec.Body.String(), "upstream-refresh") {
		t.Errorf("the upstream refresh token left the server: %s", rec.Body.String())
	}
	if got := exchangeCount(e, "issued"); got != 1 {
		t.Errorf("mcpauth_token_exchanges_total{result=issued} = %v, want 1", got)
	}
	log := logs.String()
	if !strings.Contains(log, "token exchange") || !strings.Contains(log, "result=issued") || !strings.Contains(log, "client=vault-server") || !strings.Contains(log, "user=user-1") {
		t.Errorf("no log line for the exchange:\n%s", log)
	}
	for _, secret := range []string{tok.AccessToken, "upstream-access-1", "upstream-refresh-1", vaultRS.Secret} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds a secret %q:\n%s", secret, log)
		}
	}
	// The exchange spends nothing: the user's token still works.
	if got := e.introspect(tok.AccessToken)["active"]; got != true {
		t.Errorf("subject token active = %v after the exchange, want true", got)
	}
	// audience and requested_token_type are optional.
	form := exchangeForm(tok.AccessToken)
	form.Del("audience")
	form.Del("requested_token_type")
	if rec := e.exchangeAs(vaultRS, form); rec.Code != http.StatusOK {
		t.Errorf("exchange without audience and requested_token_type: %d %s", rec.Code, rec.Body.String())
	}
}

func TestTokenExchangeRefreshesAnExpiredUpstreamTokenFirst(t *testing.T) {
	e := newExchangeEnv(t, nil)
	e.up.token.Expiry = e.clock.Now().Add(time.Minute)
	tok := e.issueFor(mcpResource)
	e.clock.Advance(2 * time.Minute)
	a := decodeExchange(t, e.exchangeAs(vaultRS, exchangeForm(tok.AccessToken)))
	if a.AccessToken != "upstream-access-2" || e.up.refreshes != 1 {
		t.Fatalf("answer %+v after %d upstream refreshes, want the refreshed token after one", a, e.up.refreshes)
	}
	if a.ExpiresIn == nil || *a.ExpiresIn != int64((2*time.Hour-2*time.Minute)/time.Second) {
		t.Errorf("expires_in %v, want the refreshed token's", a.ExpiresIn)
	}
}

func TestTokenExchangeOnRedis(t *testing.T) {
	srv := redisserver.Start(t)
	rs, err := redisstore.New(t.Context(), redisstore.Options{Addrs: []string{srv.Addr}, Prefix: "exchange"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	e := newExchangeEnv(t, nil, func(o *Options) { o.Store, o.Now = rs, time.Now })
	e.up.token.Expiry = time.Now().Add(time.Hour)
	tok := e.issueFor(mcpResource)
	rec := e.exchangeAs(vaultRS, exchangeForm(tok.AccessToken))
	if rec.Code != http.StatusOK {
		t.Fatalf("exchange: %d %s", rec.Code, rec.Body.String())
	}
	if a := decodeExchange(t, rec); a.AccessToken != "upstream-access-1" || a.IssuedTokenType != tokenTypeAccessToken {
		t.Errorf("answer %+v, want the upstream access token", a)
	}
	// Revoked on Redis, the token no longer exchanges.
	grantID := accessGrantID(t, tok.AccessToken)
	if err := rs.RevokeGrant(t.Context(), grantID); err != nil {
		t.Fatal(err)
	}
	wantOAuthError(t, e.exchangeAs(vaultRS, exchangeForm(tok.AccessToken)), http.StatusBadRequest, "invalid_grant")
}

func TestTokenExchangeRefusesWithTheRFCError(t *testing.T) {
	e := newExchangeEnv(t, nil)
	tok := e.issueFor(mcpResource)
	unbound := e.issueFor("")
	revoked := e.issueFor(mcpResource)
	if rec := e.postForm(pathRevoke, url.Values{"token": {revoked.RefreshToken}, "client_id": {trustedClient.ID}}); rec.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body.String())
	}
	with := func(mod func(url.Values)) url.Values {
		f := exchangeForm(tok.AccessToken)
		mod(f)
		return f
	}
	tests := []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		code   string
	}{
		{"no client authentication", with(func(url.Values) {}), nil, 401, "invalid_client"},
		{"a wrong client secret", with(func(url.Values) {}), []string{vaultRS.ID, "wrong"}, 401, "invalid_client"},
		{"a public client", with(func(f url.Values) { f.Set("client_id", trustedClient.ID) }), nil, 401, "invalid_client"},
		{"a confidential client that serves no resource", with(func(url.Values) {}), []string{confClient.ID, confClient.Secret}, 400, "unauthorized_client"},
		{"a server the token was not issued for", with(func(url.Values) {}), []string{otherRS.ID, otherRS.Secret}, 400, "invalid_target"},
		{"a token bound to no resource", exchangeForm(unbound.AccessToken), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_target"},
		{"an audience other than the upstream provider", with(func(f url.Values) { f.Set("audience", "https://evil.example") }), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_target"},
		{"a resource parameter", with(func(f url.Values) { f.Set("resource", mcpResource) }), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_target"},
		{"no subject_token", with(func(f url.Values) { f.Del("subject_token") }), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_request"},
		{"no subject_token_type", with(func(f url.Values) { f.Del("subject_token_type") }), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_request"},
		{"an unsupported subject_token_type", with(func(f url.Values) { f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:id_token") }), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_request"},
		{"an unsupported requested_token_type", with(func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token") }), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_request"},
		{"an actor token", with(func(f url.Values) { f.Set("actor_token", "x"); f.Set("actor_token_type", tokenTypeAccessToken) }), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_request"},
		{"a repeated parameter", with(func(f url.Values) { f.Add("audience", "fakeidp") }), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_request"},
		{"a refresh token as subject", exchangeForm(tok.RefreshToken), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_grant"},
		{"an unknown subject token", exchangeForm("mcp_at_gunknown_abc"), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_grant"},
		{"a revoked subject token", exchangeForm(revoked.AccessToken), []string{vaultRS.ID, vaultRS.Secret}, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := exchangeCount(e, tt.code)
			wantOAuthError(t, e.postForm(pathToken, tt.form, tt.basic...), tt.status, tt.code)
			if got := exchangeCount(e, tt.code); got != before+1 {
				t.Errorf("mcpauth_token_exchanges_total{result=%s} went from %v to %v, want one more", tt.code, before, got)
			}
		})
	}
	t.Run("an expired subject token", func(t *testing.T) {
		e.clock.Advance(DefaultAccessTokenTTL + time.Second)
		wantOAuthError(t, e.exchangeAs(vaultRS, exchangeForm(tok.AccessToken)), 400, "invalid_grant")
	})
}

func TestTokenExchangeAsksForANewLoginWhenTheUpstreamTokenIsGone(t *testing.T) {
	e := newExchangeEnv(t, nil)
	e.up.token.Expiry = e.clock.Now().Add(time.Minute)
	e.up.refreshErr = upstream.ErrNoRefresh
	tok := e.issueFor(mcpResource)
	e.clock.Advance(2 * time.Minute)
	rec := e.exchangeAs(vaultRS, exchangeForm(tok.AccessToken))
	a := decodeExchange(t, rec)
	if rec.Code != http.StatusBadRequest || a.Error != "invalid_grant" || !strings.Contains(a.Description, "log in again") {
		t.Fatalf("answer %d %+v, want invalid_grant telling the user to log in again", rec.Code, a)
	}
	if got := exchangeCount(e, exchangeLoginRequired); got != 1 {
		t.Errorf("mcpauth_token_exchanges_total{result=login_required} = %v, want 1", got)
	}
	// No upstream token at all (deleted, or it outlived OAUTH_EXTERNAL_TOKEN_TTL).
	if err := e.srv.store.DeleteUpstreamToken(t.Context(), "user-1"); err != nil {
		t.Fatal(err)
	}
	e.up.refreshErr = nil
	if a := decodeExchange(t, e.exchangeAs(vaultRS, exchangeForm(tok.AccessToken))); a.Error != "invalid_grant" {
		t.Errorf("without a stored upstream token: %+v, want invalid_grant", a)
	}
}

func TestTokenExchangeAnswers503WhenTheStoreIsDown(t *testing.T) {
	e := newExchangeEnv(t, nil)
	tok := e.issueFor(mcpResource)
	for _, op := range []string{"GetAccessToken", "GetUpstreamToken"} {
		e.store.failOn.Store(op)
		wantOAuthError(t, e.exchangeAs(vaultRS, exchangeForm(tok.AccessToken)), http.StatusServiceUnavailable, "temporarily_unavailable")
	}
}

func TestStaticClientResourcesAreValidated(t *testing.T) {
	for name, c := range map[string]StaticClient{
		"a relative resource":          {ID: "a", Secret: "s", RedirectURIs: []string{webRedirect}, Resources: []string{"/mcp"}},
		"a resource with a fragment":   {ID: "a", Secret: "s", RedirectURIs: []string{webRedirect}, Resources: []string{"https://mcp.example.com/#x"}},
		"resources on a public client": {ID: "a", RedirectURIs: []string{webRedirect}, Resources: []string{mcpResource}},
	} {
		if _, err := NewStaticClients(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

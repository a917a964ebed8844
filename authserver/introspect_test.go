package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store/memory"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

func TestIntrospectionRequiresAnAuthenticatedConfidentialCaller(t *testing.T) {
	tests := []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		code   string
	}{
		{"no credentials", url.Values{}, nil, 401, "invalid_client"},
		{"a public client", url.Values{"client_id": {publicClient.ID}}, nil, 401, "invalid_client"},
		{"a wrong secret", url.Values{}, []string{resourceServer.ID, "wrong"}, 401, "invalid_client"},
		{"an unknown caller", url.Values{}, []string{"nobody", "x"}, 401, "invalid_client"},
		{"Basic credentials but no token", url.Values{}, []string{resourceServer.ID, resourceServer.Secret}, 400, "invalid_request"},
		{"a repeated token", url.Values{"token": {"a", "b"}}, []string{resourceServer.ID, resourceServer.Secret}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.postForm(pathIntrospect, tt.form, tt.basic...)
			wantOAuthError(t, rec, tt.status, tt.code)
			if tt.status == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestIntrospectionAcceptsASecretInTheBody(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	rec := e.postForm(pathIntrospect, url.Values{"token": {tok.AccessToken}, "client_id": {confClient.ID}, "client_secret": {confClient.Secret}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"active":true`) {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
}

func TestIntrospectionDescribesAnActiveAccessToken(t *testing.T) {
	e := newEnv(t)
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, url.Values{"scope": {"read write"}, "resource": {"https://mcp.example.com/mcp"}})
	issuedAt := e.clock.Now()
	tok := e.exchange(trustedClient.ID, webRedirect, code, p)
	rec := e.postForm(pathIntrospect, url.Values{"token": {tok.AccessToken}}, resourceServer.ID, resourceServer.Secret)
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", rec.Header().Get("Cache-Control"))
	}
	var got IntrospectionResponse
	decodeJSON(t, rec.Body, &got)
	want := IntrospectionResponse{
		Active: true, Scope: "read write", ClientID: trustedClient.ID, Subject: "user-1",
		Audience: []string{"https://mcp.example.com/mcp"}, ExpiresAt: issuedAt.Add(DefaultAccessTokenTTL).Unix(),
		IssuedAt: issuedAt.Unix(), Issuer: testIssuer, TokenType: "Bearer",
		UpstreamAccessToken: "upstream-access-1", UpstreamTokenExpiresAt: issuedAt.Add(time.Hour).Unix(), UpstreamProvider: "fakeidp",
	}
	if got.Active != want.Active || got.Scope != want.Scope || got.ClientID != want.ClientID || got.Subject != want.Subject ||
		strings.Join(got.Audience, " ") != strings.Join(want.Audience, " ") || got.ExpiresAt != want.ExpiresAt ||
		got.IssuedAt != want.IssuedAt || got.Issuer != want.Issuer || got.TokenType != want.TokenType ||
		got.UpstreamAccessToken != want.UpstreamAccessToken || got.UpstreamTokenExpiresAt != want.UpstreamTokenExpiresAt ||
		got.UpstreamProvider != want.UpstreamProvider {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestIntrospectionReturnsOnlyActiveFalseForTokensItCannotVouchFor(t *testing.T) {
	tests := []struct {
		name  string
		token func(e *env) string
	}{
		{"garbage", func(*env) string { return "garbage" }},
		{"a well-formed unknown access token", func(*env) string { return mintToken(prefixAccess, newGrantID()) }},
		{"an authorization code", func(e *env) string { return e.code(trustedClient.ID, webRedirect, newPKCE(), nil) }},
		{"an expired access token", func(e *env) string {
			tok := e.issue()
			e.clock.Advance(DefaultAccessTokenTTL)
			return tok.AccessToken
		}},
		{"a revoked access token", func(e *env) string {
			tok := e.issue()
			e.postForm(pathRevoke, url.Values{"token": {tok.AccessToken}, "client_id": {trustedClient.ID}})
			return tok.AccessToken
		}},
		{"a rotated refresh token", func(e *env) string {
			tok := e.issue()
			e.postForm(pathToken, refreshForm(tok.RefreshToken))
			return tok.RefreshToken
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tok := tt.token(e)
			rec := e.postForm(pathIntrospect, url.Values{"token": {tok}}, resourceServer.ID, resourceServer.Secret)
			if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"active":false}` {
				t.Fatalf("%d %s", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestIntrospectionShowsTheUpstreamTokenOnlyToAllowedCallers(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	tests := []struct {
		name   string
		caller StaticClient
		sees   bool
	}{
		{"a resource server allowed to see it", resourceServer, true},
		{"a resource server without the capability", plainRS, false},
		{"a trusted confidential client", confClient, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.postForm(pathIntrospect, url.Values{"token": {tok.AccessToken}}, tt.caller.ID, tt.caller.Secret)
			if got := strings.Contains(rec.Body.String(), "upstream-access-1"); got != tt.sees || !strings.Contains(rec.Body.String(), `"active":true`) {
				t.Errorf("sees upstream token: %v, want %v: %s", got, tt.sees, rec.Body.String())
			}
		})
	}
	if rt := e.introspect(tok.RefreshToken); rt["active"] != true || rt["upstream_access_token"] != nil || rt["token_type"] != nil {
		t.Errorf("refresh token introspection %v; no upstream token, no Bearer type", rt)
	}
}

func TestIntrospectionRefreshesAnExpiredUpstreamTokenFirst(t *testing.T) {
	e := newEnv(t)
	e.up.token.Expiry = e.clock.Now().Add(time.Minute)
	tok := e.issue()
	e.clock.Advance(2 * time.Minute)
	if got := e.introspect(tok.AccessToken)["upstream_access_token"]; got != "upstream-access-2" {
		t.Fatalf("upstream token %v, want the refreshed one", got)
	}
	if got := e.introspect(tok.AccessToken)["upstream_access_token"]; got != "upstream-access-2" || e.up.refreshes != 1 {
		t.Errorf("second introspection: %v after %d refreshes; the refreshed token must be stored", got, e.up.refreshes)
	}
	stored, err := e.srv.loadUpstreamToken(t.Context(), "user-1")
	if err != nil || stored.RefreshToken != "upstream-refresh-1" {
		t.Errorf("stored %+v, %v; a refresh without a new refresh token keeps the old one", stored, err)
	}
}

func TestIntrospectionRevokesTheGrantWhenTheUpstreamRefusesTheRefresh(t *testing.T) {
	e := newEnv(t)
	e.up.token.Expiry = e.clock.Now().Add(time.Minute)
	tok := e.issue()
	sibling := e.issue() // another grant of the same user: it depends on the same upstream token
	e.clock.Advance(2 * time.Minute)
	e.up.refreshErr = fmt.Errorf("%w (fakeidp): invalid_grant", upstream.ErrNoRefresh)

	if got := e.introspect(tok.AccessToken); got["active"] != false {
		t.Fatalf("introspection %v; the grant of a user refused upstream must end", got)
	}
	wantOAuthError(t, e.postForm(pathToken, refreshForm(tok.RefreshToken)), http.StatusBadRequest, "invalid_grant")
	rec, err := e.store.GetUpstreamToken(t.Context(), "user-1")
	if err != nil || !rec.ReloginRequired || len(rec.Ciphertext) != 0 {
		t.Errorf("stored upstream record %+v, %v; want the token dropped and the refusal recorded", rec, err)
	}
	m := scrape(t, e)
	for _, want := range []string{`mcpauth_upstream_relogin_required_total 1`, `mcpauth_upstream_refreshes_total{outcome="revoked"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "upstream"))
		}
	}

	// The user's other grant ends when it next needs the token, without another
	// call to the upstream.
	if got := e.introspect(sibling.AccessToken); got["active"] != false {
		t.Errorf("the sibling grant's introspection %v; want inactive", got)
	}
	if e.up.refreshes != 1 {
		t.Errorf("%d upstream refreshes, want 1", e.up.refreshes)
	}
	if m := scrape(t, e); !strings.Contains(m, `mcpauth_upstream_relogin_required_total 2`) {
		t.Errorf("the sibling grant was not counted:\n%s", grepLines(m, "relogin"))
	}

	// Logging in again replaces the refusal with a working token.
	e.up.token.Expiry = e.clock.Now().Add(time.Hour)
	again := e.issue()
	if got := e.introspect(again.AccessToken); got["active"] != true || got["upstream_access_token"] != "upstream-access-1" {
		t.Errorf("introspection after a new login %v", got)
	}
}

func TestIntrospectionKeepsTheGrantWhenTheUpstreamRefreshFailsTransiently(t *testing.T) {
	e := newEnv(t)
	e.up.token.Expiry = e.clock.Now().Add(time.Minute)
	tok := e.issue()
	e.clock.Advance(2 * time.Minute)
	e.up.refreshErr = errors.New("upstream fakeidp: refresh: 503 Service Unavailable")
	got := e.introspect(tok.AccessToken)
	if got["active"] != true || got["upstream_access_token"] != nil {
		t.Fatalf("introspection %v; the token stays active, without an upstream token", got)
	}
	m := scrape(t, e)
	if !strings.Contains(m, `mcpauth_upstream_refreshes_total{outcome="failed"} 1`) || strings.Contains(m, "mcpauth_upstream_relogin_required_total 1") {
		t.Errorf("metrics after a transient failure:\n%s", grepLines(m, "upstream"))
	}
	// The upstream is back: the next introspection refreshes, and the grant lived on.
	e.up.refreshErr = nil
	if got := e.introspect(tok.AccessToken); got["upstream_access_token"] != "upstream-access-2" {
		t.Errorf("introspection after the upstream recovered %v", got)
	}
	if rec := e.postForm(pathToken, refreshForm(tok.RefreshToken)); rec.Code != http.StatusOK {
		t.Errorf("refresh after a transient upstream failure: %d %s", rec.Code, rec.Body.String())
	}
}

func TestIntrospectionWaitsForTheHolderOfTheUpstreamLease(t *testing.T) {
	e := newEnv(t)
	e.up.token.Expiry = e.clock.Now().Add(time.Minute)
	tok := e.issue()
	e.clock.Advance(2 * time.Minute)
	// Another replica (another holder of the same tenant) is refreshing this user.
	other := e.store.Store.(*memory.Store).WithPrefix("test")
	if ok, err := other.AcquireLease(t.Context(), "upstream:user-1", time.Hour); !ok || err != nil {
		t.Fatalf("AcquireLease: %v, %v", ok, err)
	}
	e.srv.upstreamWait = 300 * time.Millisecond

	t.Run("and gives up without refreshing when it never finishes", func(t *testing.T) {
		start := time.Now()
		got := e.introspect(tok.AccessToken)
		if got["active"] != true || got["upstream_access_token"] != nil {
			t.Errorf("introspection %v; active, without an upstream token", got)
		}
		if e.up.refreshes != 0 || time.Since(start) < e.srv.upstreamWait {
			t.Errorf("%d refreshes after %s; want none, after waiting %s", e.up.refreshes, time.Since(start), e.srv.upstreamWait)
		}
	})
	t.Run("and uses the token the holder stores", func(t *testing.T) {
		done := make(chan map[string]any)
		go func() { done <- e.introspect(tok.AccessToken) }()
		time.Sleep(50 * time.Millisecond)
		renewed := &upstream.Token{AccessToken: "renewed-elsewhere", RefreshToken: "r", Expiry: e.clock.Now().Add(time.Hour)}
		if err := e.srv.saveUpstreamToken(t.Context(), "user-1", renewed); err != nil {
			t.Fatal(err)
		}
		if got := <-done; got["upstream_access_token"] != "renewed-elsewhere" || e.up.refreshes != 0 {
			t.Errorf("introspection %v after %d refreshes; want the holder's token and none", got, e.up.refreshes)
		}
	})
}

// TestAnUpstreamRefreshIsStoredEvenWhenItsCallerHasGone: an upstream that rotates
// refresh tokens has spent the old one once it answers, so losing its answer would
// log the user out.
func TestAnUpstreamRefreshIsStoredEvenWhenItsCallerHasGone(t *testing.T) {
	e := newEnv(t)
	e.up.token.Expiry = e.clock.Now().Add(time.Minute)
	tok := e.issue()
	grantID := accessGrantID(t, tok.AccessToken)
	e.clock.Advance(2 * time.Minute)
	gate := make(chan struct{})
	e.up.mu.Lock()
	e.up.refreshGate = gate
	e.up.mu.Unlock()

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := e.srv.freshUpstreamToken(ctx, "user-1", grantID)
		done <- err
	}()
	for {
		e.up.mu.Lock()
		n := e.up.refreshes
		e.up.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel() // the MCP server gave up on its introspection
	close(gate)
	<-done
	stored, err := e.srv.loadUpstreamToken(t.Context(), "user-1")
	if err != nil || stored.AccessToken != "upstream-access-2" {
		t.Fatalf("stored upstream token %+v, %v; want the refreshed one", stored, err)
	}
	if got := e.introspect(tok.AccessToken)["upstream_access_token"]; got != "upstream-access-2" || e.up.refreshes != 1 {
		t.Errorf("the next introspection: %v after %d refreshes; want the stored token, no second refresh", got, e.up.refreshes)
	}
}

func TestIntrospectionAnswers503WhenTheStoreIsDown(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	e.store.failOn.Store("GetAccessToken")
	rec := e.postForm(pathIntrospect, url.Values{"token": {tok.AccessToken}}, resourceServer.ID, resourceServer.Secret)
	wantOAuthError(t, rec, http.StatusServiceUnavailable, "temporarily_unavailable")
}

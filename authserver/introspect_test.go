package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

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

func TestIntrospectionLeavesOutAnUpstreamTokenThatCannotBeRefreshed(t *testing.T) {
	e := newEnv(t)
	e.up.token.Expiry = e.clock.Now().Add(time.Minute)
	e.up.refreshErr = upstream.ErrNoRefresh
	tok := e.issue()
	e.clock.Advance(2 * time.Minute)
	got := e.introspect(tok.AccessToken)
	if got["active"] != true || got["upstream_access_token"] != nil {
		t.Fatalf("introspection %v; the token stays active, without an upstream token", got)
	}
}

func TestIntrospectionAnswers503WhenTheStoreIsDown(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	e.store.failOn.Store("GetAccessToken")
	rec := e.postForm(pathIntrospect, url.Values{"token": {tok.AccessToken}}, resourceServer.ID, resourceServer.Secret)
	wantOAuthError(t, rec, http.StatusServiceUnavailable, "temporarily_unavailable")
}

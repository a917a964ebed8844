package authserver

import (
	"net/http"
	"net/url"
	"testing"
)

func revokeForm(tok, clientID string) url.Values {
	return url.Values{"token": {tok}, "client_id": {clientID}}
}

func TestRevokingARefreshTokenRevokesTheWholeGrant(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	rec := e.postForm(pathRevoke, revokeForm(tok.RefreshToken, trustedClient.ID))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("%d %q", rec.Code, rec.Body.String())
	}
	for name, tk := range map[string]string{"access": tok.AccessToken, "refresh": tok.RefreshToken} {
		if e.introspect(tk)["active"] != false {
			t.Errorf("%s token active after revocation", name)
		}
	}
}

func TestRevokingAnAccessTokenRevokesOnlyIt(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	if rec := e.postForm(pathRevoke, revokeForm(tok.AccessToken, trustedClient.ID)); rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	if e.introspect(tok.AccessToken)["active"] != false {
		t.Error("access token active after revocation")
	}
	if e.introspect(tok.RefreshToken)["active"] != true {
		t.Error("refresh token revoked with the access token")
	}
}

func TestRevokingARotatedRefreshTokenRevokesItsGrant(t *testing.T) {
	e := newEnv(t)
	first := e.issue()
	rec := e.postForm(pathToken, refreshForm(first.RefreshToken))
	var second tokens
	decodeJSON(t, rec.Body, &second)
	if rec := e.postForm(pathRevoke, revokeForm(first.RefreshToken, trustedClient.ID)); rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	if e.introspect(second.AccessToken)["active"] != false {
		t.Error("the grant survived revoking its rotated refresh token")
	}
}

func TestRevocationAnswers200ForTokensItDoesNotKnow(t *testing.T) {
	tests := []struct{ name, token string }{
		{"garbage", "garbage"},
		{"an unknown access token", mintToken(prefixAccess, newGrantID())},
		{"an unknown refresh token", mintToken(prefixRefresh, newGrantID())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if rec := e.postForm(pathRevoke, revokeForm(tt.token, publicClient.ID)); rec.Code != http.StatusOK {
				t.Fatalf("%d %s", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestAForgedRefreshTokenWithARealGrantIDRevokesNothing(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	grantID, _ := parseToken(prefixRefresh, tok.RefreshToken)
	forged := mintToken(prefixRefresh, grantID)
	if rec := e.postForm(pathRevoke, revokeForm(forged, trustedClient.ID)); rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	if e.introspect(tok.AccessToken)["active"] != true {
		t.Fatal("a guessed token with a known grant ID revoked the grant")
	}
}

func TestRevocationErrors(t *testing.T) {
	tests := []struct {
		name   string
		form   func(e *env) url.Values
		basic  []string
		status int
		code   string
	}{
		{"no client", func(e *env) url.Values { return url.Values{"token": {e.issue().AccessToken}} }, nil, 401, "invalid_client"},
		{"a confidential client with a wrong secret", func(e *env) url.Values { return url.Values{"token": {"x"}} }, []string{confClient.ID, "bad"}, 401, "invalid_client"},
		{"no token", func(*env) url.Values { return url.Values{"client_id": {trustedClient.ID}} }, nil, 400, "invalid_request"},
		{"another client's access token", func(e *env) url.Values { return revokeForm(e.issue().AccessToken, publicClient.ID) }, nil, 400, "unauthorized_client"},
		{"another client's refresh token", func(e *env) url.Values { return revokeForm(e.issue().RefreshToken, publicClient.ID) }, nil, 400, "unauthorized_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			wantOAuthError(t, e.postForm(pathRevoke, tt.form(e), tt.basic...), tt.status, tt.code)
		})
	}
}

func TestRevocationAnswers503WhenTheStoreIsDown(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	e.store.failOn.Store("RevokeGrant")
	// RFC 7009 §2.2.1: 503 tells the client to retry.
	wantOAuthError(t, e.postForm(pathRevoke, revokeForm(tok.RefreshToken, trustedClient.ID)), http.StatusServiceUnavailable, "temporarily_unavailable")
}

func TestRevocationAllowsCORSPreflight(t *testing.T) {
	e := newEnv(t)
	rec := e.serve(httptestRequest(http.MethodOptions, pathRevoke))
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
}

package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
)

const testAdminToken = "admin-token-0123456789abcdef0123456789"

func withAdmin(o *Options) { o.AdminToken = testAdminToken }

// adminCall sends an admin request with token (none when empty).
func (e *env) adminCall(method, path, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, testIssuer+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.serve(req)
}

// loginAs issues tokens to client c for user.
func (e *env) loginAs(user string, c StaticClient) tokens {
	e.t.Helper()
	e.up.mu.Lock()
	e.up.subject = user
	e.up.mu.Unlock()
	p := newPKCE()
	code := e.code(c.ID, webRedirect, p, nil)
	return e.exchange(c.ID, webRedirect, code, p)
}

func (e *env) adminGrants(query string) []adminapi.Grant {
	e.t.Helper()
	rec := e.adminCall(http.MethodGet, adminapi.PathGrants+query, testAdminToken, "")
	if rec.Code != http.StatusOK {
		e.t.Fatalf("list grants: %d %s", rec.Code, rec.Body.String())
	}
	var out adminapi.GrantList
	decodeJSON(e.t, rec.Body, &out)
	return out.Grants
}

func (e *env) adminRevoke(body string) adminapi.RevokeResult {
	e.t.Helper()
	rec := e.adminCall(http.MethodPost, adminapi.PathRevoke, testAdminToken, body)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("revoke %s: %d %s", body, rec.Code, rec.Body.String())
	}
	var out adminapi.RevokeResult
	decodeJSON(e.t, rec.Body, &out)
	return out
}

func (e *env) active(tok string) bool { return e.introspect(tok)["active"] == true }

func TestAdminAPIIsAbsentWithoutAToken(t *testing.T) {
	e := newEnv(t)
	for _, rec := range []*httptest.ResponseRecorder{
		e.adminCall(http.MethodGet, adminapi.PathGrants+"?user=user-1", testAdminToken, ""),
		e.adminCall(http.MethodPost, adminapi.PathRevoke, testAdminToken, `{"all":true}`),
	} {
		if rec.Code != http.StatusNotFound {
			t.Errorf("status %d, want 404 without an admin token", rec.Code)
		}
	}
}

func TestAdminAPIRefusesAWrongToken(t *testing.T) {
	e := newEnv(t, withAdmin)
	tok := e.issue()
	for name, token := range map[string]string{"no token": "", "a wrong token": "x" + testAdminToken, "a prefix": testAdminToken[:20]} {
		for _, rec := range []*httptest.ResponseRecorder{
			e.adminCall(http.MethodGet, adminapi.PathGrants, token, ""),
			e.adminCall(http.MethodPost, adminapi.PathRevoke, token, `{"all":true}`),
		} {
			if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("%s: %d %q, want 401 with a Bearer challenge", name, rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		}
	}
	if !e.active(tok.AccessToken) {
		t.Error("a refused revocation revoked something")
	}
}

func TestAdminTokenMustBeLong(t *testing.T) {
	_, err := New(Options{Issuer: testIssuer, Store: newEnv(t).store, Upstream: newFakeUpstream(newClock().Now()), MasterKey: testKey, AdminToken: "short"})
	if err == nil || !strings.Contains(err.Error(), "AdminToken") {
		t.Errorf("New with a short admin token: %v, want an AdminToken error", err)
	}
}

func TestAdminListsAUsersGrants(t *testing.T) {
	e := newEnv(t, withAdmin)
	a := e.loginAs("alice", trustedClient)
	e.clock.Advance(1)
	e.loginAs("alice", noRefresh)
	e.loginAs("bob", trustedClient)

	got := e.adminGrants("?user=alice")
	if len(got) != 2 || got[0].ClientID != trustedClient.ID || got[1].ClientID != noRefresh.ID {
		t.Fatalf("alice's grants %+v, want her two, oldest first", got)
	}
	if g := got[0]; g.UserID != "alice" || g.Scope != "read" || g.AuthTime.IsZero() || g.ExpiresAt.IsZero() {
		t.Errorf("grant %+v lacks fields", g)
	}
	if wantID := accessGrantID(t, a.AccessToken); got[0].ID != wantID {
		t.Errorf("grant ID %s, want %s (the one in her token)", got[0].ID, wantID)
	}
	if n := len(e.adminGrants("?client=" + trustedClient.ID)); n != 2 {
		t.Errorf("%d grants of %s, want 2", n, trustedClient.ID)
	}
	if n := len(e.adminGrants("?user=alice&client=" + noRefresh.ID)); n != 1 {
		t.Errorf("%d grants of alice to %s, want 1", n, noRefresh.ID)
	}
	if n := len(e.adminGrants("")); n != 3 {
		t.Errorf("%d grants in all, want 3", n)
	}
	if rec := e.adminCall(http.MethodGet, adminapi.PathGrants+"?user=a&user=b", testAdminToken, ""); rec.Code != 400 {
		t.Errorf("repeated user: %d, want 400", rec.Code)
	}
	if body := e.adminCall(http.MethodGet, adminapi.PathGrants+"?user=nobody", testAdminToken, "").Body.String(); !strings.Contains(body, `"grants":[]`) {
		t.Errorf("no grants: %s, want an empty list, not null", body)
	}
}

func TestAdminRevokesByUserClientAndAll(t *testing.T) {
	e := newEnv(t, withAdmin)
	alice := e.loginAs("alice", trustedClient)
	aliceNR := e.loginAs("alice", noRefresh)
	bob := e.loginAs("bob", trustedClient)
	bobNR := e.loginAs("bob", noRefresh)
	carol := e.loginAs("carol", noRefresh)

	if res := e.adminRevoke(`{"user_id":"alice"}`); res.Revoked != 2 || res.UpstreamTokensDeleted != 1 {
		t.Errorf("revoke alice: %+v, want 2 grants and her upstream token", res)
	}
	if e.active(alice.AccessToken) || e.active(aliceNR.AccessToken) || !e.active(bob.AccessToken) {
		t.Fatal("after revoking alice: her tokens must be dead, bob's alive")
	}
	wantOAuthError(t, e.postForm(pathToken, map[string][]string{"grant_type": {"refresh_token"}, "refresh_token": {alice.RefreshToken}, "client_id": {trustedClient.ID}}), 400, "invalid_grant")
	if _, err := e.srv.loadUpstreamToken(t.Context(), "alice"); err == nil {
		t.Error("alice's upstream token is still in the vault")
	}
	if len(e.adminGrants("?user=alice")) != 0 {
		t.Error("alice still has grants listed")
	}

	if res := e.adminRevoke(`{"client_id":"` + noRefresh.ID + `"}`); res.Revoked != 2 || res.UpstreamTokensDeleted != 0 {
		t.Errorf("revoke %s: %+v, want bob's and carol's grants, no upstream tokens", noRefresh.ID, res)
	}
	if e.active(bobNR.AccessToken) || e.active(carol.AccessToken) || !e.active(bob.AccessToken) {
		t.Fatal("after revoking the client: its tokens must be dead, bob's other grant alive")
	}
	if _, err := e.srv.loadUpstreamToken(t.Context(), "bob"); err != nil {
		t.Errorf("revoking a client deleted bob's upstream token: %v", err)
	}

	if res := e.adminRevoke(`{"all":true}`); res.Revoked != 1 || res.UpstreamTokensDeleted != 1 {
		t.Errorf("revoke all: %+v, want bob's last grant and his upstream token", res)
	}
	if e.active(bob.AccessToken) || len(e.adminGrants("")) != 0 {
		t.Error("after revoking all, something is alive")
	}
	if res := e.adminRevoke(`{"all":true}`); res.Revoked != 0 {
		t.Errorf("revoke all again: %+v, want nothing to do", res)
	}
	for selector, want := range map[string]float64{"user": 2, "client": 2, "all": 1} {
		if got := metricValue(t, e.srv, `mcpauth_admin_revoked_grants_total{selector="`+selector+`"}`); got != want {
			t.Errorf("mcpauth_admin_revoked_grants_total{selector=%s} = %v, want %v", selector, got, want)
		}
	}
}

func TestAdminRevokeRefusesBadRequests(t *testing.T) {
	e := newEnv(t, withAdmin)
	tok := e.issue()
	for name, body := range map[string]string{
		"nothing selected":    `{}`,
		"two selectors":       `{"user_id":"user-1","all":true}`,
		"all false":           `{"all":false}`,
		"an unknown field":    `{"user":"user-1"}`,
		"malformed JSON":      `{"user_id":`,
		"two values":          `{"all":true}{"all":true}`,
		"a string for a bool": `{"all":"yes"}`,
	} {
		rec := e.adminCall(http.MethodPost, adminapi.PathRevoke, testAdminToken, body)
		var got adminapi.Error
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != 400 || got.Error != "invalid_request" {
			t.Errorf("%s: %d %s, want 400 invalid_request", name, rec.Code, rec.Body.String())
		}
	}
	req := httptest.NewRequest(http.MethodPost, testIssuer+adminapi.PathRevoke, strings.NewReader("all=true"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if rec := e.serve(req); rec.Code != 400 {
		t.Errorf("a form body: %d, want 400", rec.Code)
	}
	if rec := e.adminCall(http.MethodGet, adminapi.PathRevoke, testAdminToken, ""); rec.Code != 405 || rec.Header().Get("Allow") != "POST" {
		t.Errorf("GET revoke: %d Allow %q, want 405 Allow POST", rec.Code, rec.Header().Get("Allow"))
	}
	if !e.active(tok.AccessToken) {
		t.Error("a refused revocation revoked something")
	}
	e.store.failOn.Store("ListGrants")
	if rec := e.adminCall(http.MethodPost, adminapi.PathRevoke, testAdminToken, `{"all":true}`); rec.Code != 503 {
		t.Errorf("store down: %d, want 503", rec.Code)
	}
}

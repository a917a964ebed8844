package authserver

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/config"
)

// feed reads the revocation feed as the resource server; since is the cursor.
func (e *env) feed(since string) revocationsResponse {
	e.t.Helper()
	rec := e.getFeed(since, resourceServer.ID, resourceServer.Secret)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("revocations: %d %s", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		e.t.Errorf("Cache-Control %q, want no-store", rec.Header().Get("Cache-Control"))
	}
	var out revocationsResponse
	decodeJSON(e.t, rec.Body, &out)
	return out
}

func (e *env) getFeed(since string, basic ...string) *httptest.ResponseRecorder {
	target := testIssuer + pathRevocations
	if since != "" {
		target += "?" + url.Values{"since": {since}}.Encode()
	}
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	return e.serve(req)
}

func hasGrant(r revocationsResponse, grantID string) bool {
	return slices.ContainsFunc(r.Revocations, func(e revocationEntry) bool { return e.GrantID == grantID && e.TokenID == "" })
}

func hasJTI(r revocationsResponse, jti string) bool {
	return slices.ContainsFunc(r.Revocations, func(e revocationEntry) bool { return e.TokenID == jti && e.GrantID == "" })
}

func grantOf(t *testing.T, tok tokens) string {
	t.Helper()
	id, ok := parseToken(prefixRefresh, tok.RefreshToken)
	if !ok {
		t.Fatalf("refresh token %q", tok.RefreshToken)
	}
	return id
}

func TestEveryGrantRevocationReachesTheFeed(t *testing.T) {
	e := newEnv(t)
	if got := e.feed(""); len(got.Revocations) != 0 || got.Retention != int64((DefaultAccessTokenTTL+time.Minute)/time.Second) {
		t.Fatalf("empty feed %+v", got)
	}

	// The client revokes its refresh token (RFC 7009): the whole grant.
	revoked := e.issue()
	if rec := e.postForm(pathRevoke, url.Values{"token": {revoked.RefreshToken}, "client_id": {trustedClient.ID}}); rec.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body.String())
	}

	// A code redeemed twice.
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, nil)
	replayed := e.exchange(trustedClient.ID, webRedirect, code, p)
	wantOAuthError(t, e.postForm(pathToken, codeForm(trustedClient.ID, code, p.verifier)), http.StatusBadRequest, "invalid_grant")

	// A refresh token used twice.
	reused := e.issue()
	if rec := e.postForm(pathToken, refreshForm(reused.RefreshToken)); rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body.String())
	}
	wantOAuthError(t, e.postForm(pathToken, refreshForm(reused.RefreshToken)), http.StatusBadRequest, "invalid_grant")

	live := e.issue()
	got := e.feed("")
	for name, tok := range map[string]tokens{"revocation": revoked, "code replay": replayed, "refresh reuse": reused} {
		if !hasGrant(got, grantOf(t, tok)) {
			t.Errorf("the grant revoked by %s is not in the feed %+v", name, got)
		}
	}
	if hasGrant(got, grantOf(t, live)) {
		t.Errorf("a live grant is in the feed %+v", got)
	}
	for _, r := range got.Revocations {
		if r.At != e.clock.Now().Unix() {
			t.Errorf("entry %+v: at is not the time of revocation %d", r, e.clock.Now().Unix())
		}
	}
}

func TestRevokingAJWTAccessTokenRevokesItAloneAndFeedsItsJTI(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	other := e.issue()
	jti, _ := decodeSegment(t, tok.AccessToken, 1)["jti"].(string)

	// Another client may not revoke it (RFC 7009 §2.1).
	rec := e.postForm(pathRevoke, url.Values{"token": {tok.AccessToken}, "client_id": {publicClient.ID}})
	wantOAuthError(t, rec, http.StatusBadRequest, "unauthorized_client")
	if hasJTI(e.feed(""), jti) {
		t.Fatal("a refused revocation reached the feed")
	}

	rec = e.postForm(pathRevoke, url.Values{"token": {tok.AccessToken}, "client_id": {trustedClient.ID}})
	if rec.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body.String())
	}
	if e.introspect(tok.AccessToken)["active"] != false {
		t.Error("the revoked JWT is still active")
	}
	if e.introspect(tok.RefreshToken)["active"] != true || e.introspect(other.AccessToken)["active"] != true {
		t.Error("revoking one access token revoked more")
	}
	got := e.feed("")
	if !hasJTI(got, jti) || len(got.Revocations) != 1 {
		t.Fatalf("feed %+v, want the jti alone", got)
	}
	revoked, err := e.srv.store.TokenIDRevoked(t.Context(), grantOf(t, tok), jti)
	if err != nil || !revoked {
		t.Errorf("TokenIDRevoked = %v, %v", revoked, err)
	}
	// Revoking it again is fine (RFC 7009 §2.2) and feeds it again.
	if rec := e.postForm(pathRevoke, url.Values{"token": {tok.AccessToken}, "client_id": {trustedClient.ID}}); rec.Code != http.StatusOK {
		t.Fatalf("second revoke: %d %s", rec.Code, rec.Body.String())
	}
}

func TestTheFeedCursorReturnsOnlyWhatCameAfter(t *testing.T) {
	e := newEnv(t)
	first := e.issue()
	if err := e.srv.store.RevokeGrant(t.Context(), grantOf(t, first)); err != nil {
		t.Fatal(err)
	}
	page := e.feed("")
	if len(page.Revocations) != 1 || page.Cursor == "" {
		t.Fatalf("first page %+v", page)
	}
	// Nothing new: the same entry again, since a cursor reaches back cursorOverlap
	// before the newest entry it saw.
	e.clock.Advance(10 * time.Second)
	again := e.feed(page.Cursor)
	e.clock.Advance(10 * time.Second)
	second := e.issue()
	if err := e.srv.store.RevokeGrant(t.Context(), grantOf(t, second)); err != nil {
		t.Fatal(err)
	}
	next := e.feed(again.Cursor)
	if !hasGrant(next, grantOf(t, second)) {
		t.Errorf("the page after the cursor %+v lacks the second grant", next)
	}
	if last := e.feed(next.Cursor); !hasGrant(last, grantOf(t, second)) || hasGrant(last, grantOf(t, first)) {
		t.Errorf("the page after the newest entry %+v: want it (within the overlap) and nothing older", last)
	}
	if all := e.feed(""); len(all.Revocations) != 2 {
		t.Errorf("without since: %+v, want both", all)
	}
	// A cursor older than anything retained returns everything retained.
	if old := e.feed(cursorPrefix + "1"); len(old.Revocations) != 2 {
		t.Errorf("an old cursor: %+v, want both", old)
	}
}

func TestTheFeedRefusesBadCursorsAndUnauthenticatedCallers(t *testing.T) {
	e := newEnv(t)
	future := cursorPrefix + strconv.FormatInt(e.clock.Now().Add(time.Hour).UnixMilli(), 10)
	for _, c := range []string{"nonsense", "v1.", "v1.x", "v1.-5", "v2.5", "v1.99999999999999999999", future} {
		t.Run("cursor "+c, func(t *testing.T) {
			wantOAuthError(t, e.getFeed(c, resourceServer.ID, resourceServer.Secret), http.StatusBadRequest, "invalid_request")
		})
	}
	t.Run("since twice", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, testIssuer+pathRevocations+"?since=v1.0&since=v1.0", nil)
		req.SetBasicAuth(resourceServer.ID, resourceServer.Secret)
		wantOAuthError(t, e.serve(req), http.StatusBadRequest, "invalid_request")
	})
	callers := []struct {
		name  string
		basic []string
	}{
		{"no credentials", nil},
		{"a wrong secret", []string{resourceServer.ID, "wrong"}},
		{"an unknown client", []string{"nobody", "x"}},
	}
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			rec := e.getFeed("", c.basic...)
			wantOAuthError(t, rec, http.StatusUnauthorized, "invalid_client")
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	t.Run("a public client", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, testIssuer+pathRevocations, nil)
		req.Header.Set("Authorization", "Basic "+basicAuth(publicClient.ID, ""))
		wantOAuthError(t, e.serve(req), http.StatusUnauthorized, "invalid_client")
	})
	t.Run("POST", func(t *testing.T) {
		wantOAuthError(t, e.postForm(pathRevocations, url.Values{}, resourceServer.ID, resourceServer.Secret), http.StatusMethodNotAllowed, "invalid_request")
	})
}

func basicAuth(id, secret string) string {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(id, secret)
	return req.Header.Get("Authorization")[len("Basic "):]
}

func TestTheFeedAnswersForOpaqueTokensToo(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AccessTokenFormat = config.AccessTokenOpaque })
	tok := e.issue()
	if rec := e.postForm(pathRevoke, url.Values{"token": {tok.RefreshToken}, "client_id": {trustedClient.ID}}); rec.Code != http.StatusOK {
		t.Fatalf("revoke: %d", rec.Code)
	}
	if !hasGrant(e.feed(""), grantOf(t, tok)) {
		t.Error("an opaque-token server's revoked grant is not in the feed")
	}
}

func TestTheFeedAnswers503WhenTheStoreIsDown(t *testing.T) {
	e := newEnv(t)
	e.store.down.Store(true)
	wantOAuthError(t, e.getFeed("", resourceServer.ID, resourceServer.Secret), http.StatusServiceUnavailable, "temporarily_unavailable")
}

package authserver

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// startLogin runs authorize for the trusted client and returns the browser and the
// upstream state it was sent with.
func startLogin(t *testing.T, e *env) (*browser, string) {
	t.Helper()
	b := e.browser()
	u := location(t, b.get(authorizeURL(authzQuery(trustedClient.ID, webRedirect, newPKCE()))))
	return b, u.Query().Get("state")
}

func callbackURL(q url.Values) string { return testIssuer + DefaultCallbackPath + "?" + q.Encode() }

func TestCallbackRedirectsToTheClientWithCodeStateAndIss(t *testing.T) {
	e := newEnv(t)
	b, state := startLogin(t, e)
	rec := b.get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {state}}))
	u := location(t, rec)
	q := u.Query()
	if got := u.Scheme + "://" + u.Host + u.Path; got != webRedirect {
		t.Fatalf("redirected to %s", u)
	}
	if _, ok := parseToken(prefixCode, q.Get("code")); !ok || q.Get("state") != "client-state-123" || q.Get("iss") != testIssuer {
		t.Fatalf("code %q state %q iss %q", q.Get("code"), q.Get("state"), q.Get("iss"))
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", rec.Header().Get("Cache-Control"))
	}
	tok, err := e.srv.loadUpstreamToken(t.Context(), "user-1")
	if err != nil || tok.AccessToken != "upstream-access-1" || tok.RefreshToken != "upstream-refresh-1" {
		t.Fatalf("stored upstream token %+v, %v", tok, err)
	}
}

func TestCallbackShowsAnErrorPageWhenTheStateCannotBeTrusted(t *testing.T) {
	tests := []struct {
		name   string
		run    func(t *testing.T, e *env) *browserResult
		status int
	}{
		{"no state", func(t *testing.T, e *env) *browserResult {
			b, _ := startLogin(t, e)
			return result(b.get(callbackURL(url.Values{"code": {goodUpstreamCode}})))
		}, 400},
		{"an unknown state", func(t *testing.T, e *env) *browserResult {
			b, _ := startLogin(t, e)
			return result(b.get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {randomString(32)}})))
		}, 400},
		{"a replayed state", func(t *testing.T, e *env) *browserResult {
			b, state := startLogin(t, e)
			q := url.Values{"code": {goodUpstreamCode}, "state": {state}}
			location(t, b.get(callbackURL(q)))
			return result(b.get(callbackURL(q)))
		}, 400},
		{"an expired state", func(t *testing.T, e *env) *browserResult {
			b, state := startLogin(t, e)
			e.clock.Advance(DefaultPendingTTL + time.Second)
			return result(b.get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {state}})))
		}, 400},
		{"another browser (no flow cookie)", func(t *testing.T, e *env) *browserResult {
			_, state := startLogin(t, e)
			return result(e.browser().get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {state}})))
		}, 400},
		{"another browser with its own flow cookie", func(t *testing.T, e *env) *browserResult {
			_, state := startLogin(t, e)
			other, _ := startLogin(t, e)
			return result(other.get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {state}})))
		}, 400},
		{"an upstream error with an unknown state", func(t *testing.T, e *env) *browserResult {
			b, _ := startLogin(t, e)
			return result(b.get(callbackURL(url.Values{"error": {"access_denied"}, "state": {"nope"}})))
		}, 400},
		{"a store outage", func(t *testing.T, e *env) *browserResult {
			b, state := startLogin(t, e)
			e.store.down.Store(true)
			return result(b.get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {state}})))
		}, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := tt.run(t, e)
			if r.status != tt.status || r.location != "" {
				t.Fatalf("status %d location %q; want %d and no redirect", r.status, r.location, tt.status)
			}
			wantHTMLPage(t, r)
		})
	}
}

// browserResult keeps what the table test needs of a response.
type browserResult struct {
	status   int
	location string
	header   http.Header
}

func (r *browserResult) Header() http.Header { return r.header }

func result(rec interface {
	Header() http.Header
	Result() *http.Response
}) *browserResult {
	res := rec.Result()
	return &browserResult{status: res.StatusCode, location: res.Header.Get("Location"), header: rec.Header()}
}

func TestCallbackPassesUpstreamFailuresToTheClient(t *testing.T) {
	tests := []struct {
		name  string
		query url.Values
		setup func(e *env)
		code  string
	}{
		{"the user denied upstream", url.Values{"error": {"access_denied"}}, nil, "access_denied"},
		{"the upstream wants a login", url.Values{"error": {"login_required"}}, nil, "login_required"},
		{"the upstream refused our configuration", url.Values{"error": {"invalid_scope"}}, nil, "server_error"},
		{"the upstream sent no code", url.Values{}, nil, "server_error"},
		{"the upstream refused the code", url.Values{"code": {"bad-code"}}, nil, "server_error"},
		{"the upstream timed out", url.Values{"code": {goodUpstreamCode}}, func(e *env) {
			e.up.exchangeErr = fmt.Errorf("%w: %w", upstream.ErrExchange, context.DeadlineExceeded)
		}, "temporarily_unavailable"},
		{"the upstream identity has no subject", url.Values{"code": {goodUpstreamCode}}, func(e *env) { e.up.subject = "" }, "server_error"},
		{"the store fails while saving the code", url.Values{"code": {goodUpstreamCode}}, func(e *env) { e.store.failOn.Store("SaveCode") }, "temporarily_unavailable"},
		{"the store fails while saving the upstream token", url.Values{"code": {goodUpstreamCode}}, func(e *env) {
			e.store.failOn.Store("PutUpstreamToken")
		}, "temporarily_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			b, state := startLogin(t, e)
			if tt.setup != nil {
				tt.setup(e)
			}
			tt.query.Set("state", state)
			wantErrorRedirect(t, location(t, b.get(callbackURL(tt.query))), webRedirect, tt.code)
		})
	}
}

func TestCallbackKeepsTheUpstreamRefreshTokenWhenANewLoginBringsNone(t *testing.T) {
	e := newEnv(t)
	e.issue()
	e.up.token = upstream.Token{AccessToken: "upstream-access-3", Expiry: e.clock.Now().Add(time.Hour)}
	e.issue()
	tok, err := e.srv.loadUpstreamToken(t.Context(), "user-1")
	if err != nil || tok.AccessToken != "upstream-access-3" || tok.RefreshToken != "upstream-refresh-1" {
		t.Fatalf("stored %+v, %v", tok, err)
	}
}

func TestCallbackSendsTheStoredPKCEVerifierAndNonceUpstream(t *testing.T) {
	e := newEnv(t)
	b, state := startLogin(t, e)
	sent := e.up.lastParams
	if !validVerifier(sent.Verifier) || sent.Nonce == "" {
		t.Fatalf("upstream params %+v", sent)
	}
	// The fake refuses an exchange whose params differ from those of AuthCodeURL.
	location(t, b.get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {state}})))
	if strings.Contains(e.store.recorded(), state) {
		t.Error("the upstream state reached the store in clear")
	}
}

func TestCallbackRefusesPost(t *testing.T) {
	e := newEnv(t)
	if rec := e.postForm(DefaultCallbackPath, url.Values{}); rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("status %d", rec.Code)
	}
}

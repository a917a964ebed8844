package authserver

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// stepUpEnv is a server whose "write" scope needs the upstream scope "repo", with an
// upstream whose logins ask for "read:user".
func stepUpEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, func(o *Options) { o.UpstreamScopes = map[string][]string{"write": {"repo"}} })
	e.up.scopes = []string{"read:user"}
	return e
}

// loginFor runs a browser flow for the trusted client asking for scope, and returns
// the scope of the tokens it ends with.
func (e *env) loginFor(b *browser, scope string) string {
	e.t.Helper()
	p := newPKCE()
	q := authzQuery(trustedClient.ID, webRedirect, p)
	q.Set("scope", scope)
	back := b.login(e.t, q)
	if back.Query().Get("code") == "" {
		e.t.Fatalf("no code: %s", back)
	}
	return e.exchange(trustedClient.ID, webRedirect, back.Query().Get("code"), p).Scope
}

func (e *env) upstreamAsked() []string {
	e.up.mu.Lock()
	defer e.up.mu.Unlock()
	return slices.Clone(e.up.lastParams.Scopes)
}

func (e *env) storedUpstream(user string) (access, scope string) {
	e.t.Helper()
	tok, err := e.srv.loadUpstreamToken(context.Background(), user)
	if err != nil {
		e.t.Fatalf("stored upstream token of %s: %v", user, err)
	}
	return tok.AccessToken, tok.Scope
}

func TestStepUpAsksUpstreamForOnlyTheMissingScopes(t *testing.T) {
	e := stepUpEnv(t)
	b := e.browser()

	if got := e.loginFor(b, "read"); got != "read" {
		t.Fatalf("first login granted %q", got)
	}
	if asked := e.upstreamAsked(); asked != nil {
		t.Errorf("a login for a scope without upstream scopes asked upstream for %q, want the provider's defaults", asked)
	}
	if _, scope := e.storedUpstream("user-1"); scope != "read:user" {
		t.Errorf("the stored upstream token covers %q, want the defaults asked for (read:user)", scope)
	}

	e.up.mu.Lock()
	e.up.token.AccessToken = "upstream-access-stepped-up"
	e.up.mu.Unlock()
	if got := e.loginFor(b, "read write"); got != "read write" {
		t.Fatalf("the step-up granted %q, want read write", got)
	}
	if asked := e.upstreamAsked(); !slices.Equal(asked, []string{"repo"}) {
		t.Errorf("the step-up asked upstream for %q, want only the missing repo", asked)
	}
	access, scope := e.storedUpstream("user-1")
	if access != "upstream-access-stepped-up" || scope != "read:user repo" {
		t.Errorf("stored upstream token %q covering %q, want the new one covering read:user repo", access, scope)
	}

	// Everything is there now: the next login still has to say who the user is, and
	// asks for what they granted, which no provider prompts for again.
	if got := e.loginFor(b, "read write"); got != "read write" {
		t.Fatalf("the third login granted %q", got)
	}
	if asked := e.upstreamAsked(); !slices.Equal(asked, []string{"read:user", "repo"}) {
		t.Errorf("a login whose upstream scopes are all granted asked for %q", asked)
	}
}

func TestStepUpWithoutAHintAsksForEverything(t *testing.T) {
	e := stepUpEnv(t)
	e.loginFor(e.browser(), "read")

	for name, b := range map[string]*browser{
		"a browser that never logged in": e.browser(),
		"a browser whose hint is forged": func() *browser {
			b := e.browser()
			u, _ := url.Parse(testIssuer)
			b.jar.SetCookies(u, []*http.Cookie{{Name: e.srv.cookies.user, Value: "bm90IG91cnM", Path: "/", Secure: true}})
			return b
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			if got := e.loginFor(b, "read write"); got != "read write" {
				t.Fatalf("granted %q", got)
			}
			if asked := e.upstreamAsked(); !slices.Equal(asked, []string{"read:user", "repo"}) {
				t.Errorf("asked upstream for %q, want the defaults and the extra", asked)
			}
		})
	}
}

func TestStepUpTheUpstreamDeclinedIsNotGranted(t *testing.T) {
	e := stepUpEnv(t)
	b := e.browser()
	e.loginFor(b, "read")
	// The provider says what the token covers, and repo is not in it.
	e.up.mu.Lock()
	e.up.token.Scope = "read:user"
	e.up.mu.Unlock()
	if got := e.loginFor(b, "read write"); got != "read" {
		t.Errorf("granted %q, want read only: the upstream token cannot serve write's tools", got)
	}
	if _, scope := e.storedUpstream("user-1"); scope != "read:user" {
		t.Errorf("stored upstream token covers %q, want what the provider said", scope)
	}
}

func TestStepUpForAnotherUserDoesNotInheritScopes(t *testing.T) {
	e := stepUpEnv(t)
	b := e.browser()
	e.loginFor(b, "read") // the browser's hint now names user-1
	e.up.mu.Lock()
	e.up.subject = "user-2" // but user-2 signs in at the upstream
	e.up.mu.Unlock()
	e.loginFor(b, "read write")
	if asked := e.upstreamAsked(); !slices.Equal(asked, []string{"repo"}) {
		t.Fatalf("asked %q", asked)
	}
	if _, scope := e.storedUpstream("user-2"); scope != "repo" {
		t.Errorf("user-2's upstream token covers %q, want only what this login asked for (repo)", scope)
	}
}

func TestUpstreamScopesOptionsAreValidated(t *testing.T) {
	for name, m := range map[string]map[string][]string{
		"an unsupported scope": {"admin": {"repo"}},
		"no upstream scope":    {"write": {}},
		"a malformed one":      {"write": {"a b"}},
		"a valid map":          {"write": {"repo", "read:org"}},
	} {
		t.Run(name, func(t *testing.T) {
			opts := Options{Issuer: testIssuer, ScopesSupported: []string{"read", "write"}, UpstreamScopes: m,
				Store: newEnv(t).store, Upstream: newFakeUpstream(newClock().Now()), MasterKey: testKey}
			if _, err := New(opts); (err == nil) != (name == "a valid map") {
				t.Errorf("New: %v", err)
			}
		})
	}
}

// MCP clients register with the scope of their first challenge; the step-up to more
// must still work, so a self-registered scope is no ceiling.
func TestADynamicClientCanStepUpBeyondItsRegisteredScope(t *testing.T) {
	e := stepUpEnv(t)
	r := e.register(`{"redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"none",
		"grant_types":["authorization_code","refresh_token"],"scope":"read"}`)
	if r.Scope != "read" {
		t.Errorf("registered scope %q, want read echoed", r.Scope)
	}
	p := newPKCE()
	code := e.code(r.ClientID, "http://127.0.0.1:4444/callback", p, url.Values{"scope": {"read write"}})
	if tok := e.exchange(r.ClientID, "http://127.0.0.1:4444/callback", code, p); tok.Scope != "read write" {
		t.Errorf("granted %q, want read write", tok.Scope)
	}
}

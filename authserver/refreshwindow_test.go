package authserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The reuse grace window (Options.RefreshReuseWindow): a rotated refresh token
// presented again by its client inside the window gets the same successor; after it,
// or from another client, the grant is revoked. The strict rule without a window is
// TestRefreshRotatesAndReuseRevokesTheGrant.

const testWindow = 30 * time.Second

func withWindow(w time.Duration) func(*Options) {
	return func(o *Options) { o.RefreshReuseWindow = w }
}

// refreshAs sends a refresh request for a public client and decodes a 200 answer; any
// other answer is an error naming its status and OAuth error code.
func (e *env) refreshAs(clientID, rt string) (tokens, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}}
	rec := e.postForm(pathToken, form)
	return decodeTokenAnswer(rec.Code, rec.Body.Bytes())
}

// decodeTokenAnswer decodes a token endpoint answer: the tokens of a 200, or an error
// "<status> <error code>".
func decodeTokenAnswer(status int, body []byte) (tokens, error) {
	if status != http.StatusOK {
		var oe struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &oe)
		return tokens{}, fmt.Errorf("%d %s", status, oe.Error)
	}
	var tok tokens
	if err := json.Unmarshal(body, &tok); err != nil {
		return tokens{}, fmt.Errorf("decode %s: %w", body, err)
	}
	return tok, nil
}

func wantInvalidGrant(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || err.Error() != "400 invalid_grant" {
		t.Fatalf("%s: %v, want 400 invalid_grant", what, err)
	}
}

func TestRefreshReuseInsideTheWindowReturnsTheSameSuccessor(t *testing.T) {
	e := newEnv(t, withWindow(testWindow))
	first := e.issue()
	second, err := e.refreshAs(trustedClient.ID, first.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatalf("not rotated: %+v", second)
	}
	e.clock.Advance(testWindow - time.Second)
	again, err := e.refreshAs(trustedClient.ID, first.RefreshToken)
	if err != nil {
		t.Fatalf("the same refresh token again inside the window: %v", err)
	}
	if again.AccessToken != second.AccessToken || again.RefreshToken != second.RefreshToken || again.Scope != second.Scope ||
		again.TokenType != "Bearer" {
		t.Fatalf("inside the window got %+v, want the first rotation's %+v", again, second)
	}
	if want := second.ExpiresIn - int64((testWindow-time.Second)/time.Second); again.ExpiresIn != want {
		t.Errorf("expires_in %d, want %d: the successor's access token expires when it did", again.ExpiresIn, want)
	}
	for name, tok := range map[string]string{"first access": first.AccessToken, "successor access": second.AccessToken, "successor refresh": second.RefreshToken} {
		if e.introspect(tok)["active"] != true {
			t.Errorf("%s token inactive after a reuse inside the window", name)
		}
	}
	seen := e.store.recorded()
	for _, s := range []string{second.AccessToken, second.RefreshToken} {
		if strings.Contains(seen, s) {
			t.Errorf("the successor %.10s... reached the store in clear", s)
		}
	}
	if m := scrape(t, e); !strings.Contains(m, `mcpauth_refresh_token_reuse_total{outcome="grace"} 1`) {
		t.Errorf("grace reuse not counted:\n%s", grepLines(m, "reuse"))
	}

	// The window is over: the same presentation now means a stolen copy.
	e.clock.Advance(2 * time.Second)
	_, err = e.refreshAs(trustedClient.ID, first.RefreshToken)
	wantInvalidGrant(t, "the same refresh token after the window", err)
	for name, tok := range map[string]string{"first access": first.AccessToken, "successor access": second.AccessToken, "successor refresh": second.RefreshToken} {
		if e.introspect(tok)["active"] != false {
			t.Errorf("%s token active after a reuse after the window", name)
		}
	}
	_, err = e.refreshAs(trustedClient.ID, second.RefreshToken)
	wantInvalidGrant(t, "the successor's refresh token after the grant was revoked", err)
	if m := scrape(t, e); !strings.Contains(m, `mcpauth_refresh_token_reuse_total{outcome="revoked"} 1`) {
		t.Errorf("revoking reuse not counted:\n%s", grepLines(m, "reuse"))
	}
}

func TestRefreshReuseByAnotherClientInsideTheWindowRevokesTheGrant(t *testing.T) {
	e := newEnv(t, withWindow(testWindow))
	first := e.issue()
	second, err := e.refreshAs(trustedClient.ID, first.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	_, err = e.refreshAs(publicClient.ID, first.RefreshToken)
	wantInvalidGrant(t, "another client presenting the rotated token", err)
	if e.introspect(second.AccessToken)["active"] != false {
		t.Error("the successor survived another client's reuse")
	}
	_, err = e.refreshAs(trustedClient.ID, first.RefreshToken)
	wantInvalidGrant(t, "the right client's reuse after the revocation", err)
}

func TestRefreshReuseWindowIsRefusedOutsideItsBounds(t *testing.T) {
	for _, w := range []time.Duration{-time.Second, MaxRefreshReuseWindow + time.Second} {
		opts := Options{Issuer: testIssuer, Store: &testStore{}, Upstream: newFakeUpstream(time.Now()), MasterKey: testKey, RefreshReuseWindow: w}
		if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "RefreshReuseWindow") {
			t.Errorf("RefreshReuseWindow %s: %v, want an error naming the field", w, err)
		}
	}
}

// windowHarness is what checkConcurrentRefreshes needs of a deployment.
type windowHarness struct {
	refresh    func(rt string) (tokens, error) // safe for concurrent use
	active     func(tok string) bool
	passWindow func() // lets the window of the last rotation pass
	// grants counts the live and the revoked grants; nil where the store cannot tell.
	grants func() (live, revoked int)
	// atRest dumps what the store holds, to look for tokens in clear; nil to skip.
	atRest func() string
}

// checkConcurrentRefreshes races 50 refreshes of one refresh token, then 50 of its
// successor: every caller gets the same working pair, the grant lives, nothing is
// revoked. Then the first token, presented after the window, revokes the grant.
func checkConcurrentRefreshes(t *testing.T, h windowHarness, first tokens) {
	t.Helper()
	const n = 50
	race := func(rt string) tokens {
		t.Helper()
		results, errs := make([]tokens, n), make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				results[i], errs[i] = h.refresh(rt)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("refresh %d of %d: %v; every caller must get a token pair", i+1, n, err)
			}
		}
		for i, r := range results {
			// expires_in counts down: the successor's access token expires when it did.
			r.ExpiresIn = results[0].ExpiresIn
			if r != results[0] {
				t.Fatalf("refresh %d got %+v, refresh 1 %+v: the token was rotated more than once", i+1, r, results[0])
			}
		}
		got := results[0]
		if got.RefreshToken == "" || got.RefreshToken == rt {
			t.Fatalf("not rotated: %+v", got)
		}
		return got
	}
	second := race(first.RefreshToken)
	if !h.active(second.AccessToken) {
		t.Fatal("the access token every caller got is inactive")
	}
	third := race(second.RefreshToken)
	for name, tok := range map[string]string{"first access": first.AccessToken, "second access": second.AccessToken,
		"third access": third.AccessToken, "third refresh": third.RefreshToken} {
		if !h.active(tok) {
			t.Errorf("%s token inactive after the concurrent refreshes: something was revoked", name)
		}
	}
	if h.grants != nil {
		if live, revoked := h.grants(); live != 1 || revoked != 0 {
			t.Errorf("%d live and %d revoked grants after the concurrent refreshes, want 1 and 0", live, revoked)
		}
	}

	if h.atRest != nil {
		dump := h.atRest()
		if !strings.Contains(dump, ":succ:") {
			t.Error("no successor is kept in the store inside the window")
		}
		for _, tok := range []string{second.AccessToken, second.RefreshToken, third.AccessToken, third.RefreshToken} {
			secret := tok // a JWT; an opaque token's secret part is after its last field
			if parts := strings.SplitN(tok, "_", 4); len(parts) == 4 {
				secret = parts[3]
			}
			if strings.Contains(dump, tok) || strings.Contains(dump, secret) {
				t.Errorf("token %.10s... is in the store in clear", tok)
			}
		}
	}

	h.passWindow()
	_, err := h.refresh(first.RefreshToken)
	wantInvalidGrant(t, "the first refresh token after the window", err)
	for name, tok := range map[string]string{"second access": second.AccessToken, "third access": third.AccessToken, "third refresh": third.RefreshToken} {
		if h.active(tok) {
			t.Errorf("%s token active after a reuse after the window", name)
		}
	}
	if h.grants != nil {
		if live, revoked := h.grants(); live != 0 || revoked != 1 {
			t.Errorf("%d live and %d revoked grants after the late reuse, want 0 and 1", live, revoked)
		}
	}
}

func TestConcurrentRefreshesInsideTheWindowOnMemory(t *testing.T) {
	e := newEnv(t, withWindow(testWindow))
	first := e.issue()
	checkConcurrentRefreshes(t, windowHarness{
		refresh:    func(rt string) (tokens, error) { return e.refreshAs(trustedClient.ID, rt) },
		active:     func(tok string) bool { return e.introspect(tok)["active"] == true },
		passWindow: func() { e.clock.Advance(testWindow + time.Second) },
	}, first)
}

// TestConcurrentRefreshesInsideTheWindowAcrossTwoServersSharingRedis: the front
// alternates the 50 requests between two replicas. Redis keeps time by the real
// clock, so the window is short and the test waits for it to pass.
func TestConcurrentRefreshesInsideTheWindowAcrossTwoServersSharingRedis(t *testing.T) {
	const window = 3 * time.Second
	stores, raw := startRedisStores(t, 2)
	fe := newFlowEnv(t, stores, false, withWindow(window))
	clientID, meta, tok := loginPublic(t, fe)
	first := tokens{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken}
	refresh := func(rt string) (tokens, error) {
		resp, err := fe.httpClient().PostForm(meta.TokenEndpoint,
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID}})
		if err != nil {
			return tokens{}, err
		}
		defer resp.Body.Close()
		var body json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return tokens{}, err
		}
		return decodeTokenAnswer(resp.StatusCode, body)
	}
	count := func(pattern string) int {
		keys, err := raw.Keys(t.Context(), pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	started := time.Now()
	checkConcurrentRefreshes(t, windowHarness{
		refresh: refresh,
		active:  func(tok string) bool { return fe.introspect(t, meta, tok).Active },
		passWindow: func() {
			if elapsed := time.Since(started); elapsed >= window {
				t.Fatalf("the concurrent refreshes took %s, longer than the window %s: the machine is too slow for this test", elapsed, window)
			}
			// Every rotation so far happened before now, so its window ends before this.
			time.Sleep(window + 200*time.Millisecond)
		},
		grants: func() (int, int) { return count("flowtest:{g:*}:grant"), count("flowtest:{g:*}:revoked") },
		atRest: func() string { return dumpRedis(t, raw) },
	}, first)
	if a, b := fe.served[0].Load(), fe.served[1].Load(); a < 50 || b < 50 {
		t.Errorf("requests per server: %d and %d; the refreshes did not reach both", a, b)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// loginPublic registers a public client at fe and runs its authorization-code flow
// with golang.org/x/oauth2; it returns the client ID, the metadata and the tokens.
func loginPublic(t *testing.T, fe *flowEnv) (string, Metadata, *oauth2.Token) {
	t.Helper()
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, fe.httpClient())
	meta := fe.discover(t)
	reg := fe.registerClient(t, meta)
	cfg := &oauth2.Config{ClientID: reg.ClientID, RedirectURL: flowRedirectUsed, Scopes: []string{"read"},
		Endpoint: oauth2.Endpoint{AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	back := fe.browse(t, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	tok, err := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return reg.ClientID, meta, tok
}

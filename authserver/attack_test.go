package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcpauth/mcpauth/authserver/resource"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/memory"
)

// The attacks of RFC 9700 (OAuth 2.0 Security Best Current Practice), OAuth 2.1 and the
// MCP security best practices that the per-endpoint tests do not already play.
// docs/security.md lists every attack with the test that proves it, here or elsewhere.

// otherClient is a second registered client, whose redirect URI an attacker may try to
// use with the first client's ID.
var otherClient = StaticClient{ID: "other-app", RedirectURIs: []string{"https://other.example.net/cb"}, Trusted: true}

// TestRedirectURIAttacksGetAnErrorPageNeverARedirect plays the redirect URI
// manipulations of RFC 9700 §4.1 against the authorization endpoint.
//
// RFC 9700 §2.1: "When comparing client redirection URIs against pre-registered URIs,
// authorization servers MUST utilize exact string matching except for port numbers in
// localhost redirection URIs of native apps". RFC 6749 §4.1.2.1: the server "MUST NOT
// automatically redirect the user-agent to the invalid redirection URI". The cases the
// authorize tests already cover (another host, an extra path segment, an added query,
// case, a fragment, another https port) are not repeated.
func TestRedirectURIAttacksGetAnErrorPageNeverARedirect(t *testing.T) {
	tests := []struct {
		name, redirectURI string
	}{
		{"a prefix of the registered URI", "https://app.example.com/c"},
		{"the registered URI with a trailing slash", "https://app.example.com/cb/"},
		{"the registered URI with a trailing dot on the host", "https://app.example.com./cb"},
		{"a host that starts with the registered host", "https://app.example.com.evil.net/cb"},
		{"a path that climbs out of the registered path", "https://app.example.com/cb/../evil"},
		{"the registered host as user info in front of another host", "https://app.example.com@evil.net/cb"},
		{"user info in front of the registered host", "https://attacker@app.example.com/cb"},
		{"a percent-encoded path", "https://app.example.com/%63b"},
		{"a percent-encoded host", "https://app%2Eexample.com/cb"},
		{"an encoded slash that turns the host into user info", "https://app.example.com%2F@evil.net/cb"},
		{"a backslash that some browsers read as a slash", `https://app.example.com\@evil.net/cb`},
		{"an upper-case scheme", "HTTPS://app.example.com/cb"},
		{"the default port spelled out", "https://app.example.com:443/cb"},
		{"a javascript: URI", "javascript:alert(document.domain)//https://app.example.com/cb"},
		{"a data: URI", "data:text/html,<script>alert(1)</script>"},
		{"another registered client's redirect URI", otherClient.RedirectURIs[0]},
		{"a loopback URI with user info", "http://attacker@127.0.0.1:5555/cb"},
		{"a loopback URI whose user info is the loopback address", "http://127.0.0.1:5555@evil.net/cb"},
		{"a loopback URI with a fragment", "http://127.0.0.1:5555/cb#x"},
		{"a loopback URI with port 0", "http://127.0.0.1:0/cb"},
		{"a loopback URI with a port out of range", "http://127.0.0.1:65536/cb"},
		{"a loopback URI with a percent-encoded path", "http://127.0.0.1:5555/%63b"},
		{"a loopback URI with an added query", "http://127.0.0.1:5555/cb?x=1"},
		{"a loopback URI spelled in hex", "http://0x7f.0.0.1:5555/cb"},
		{"the IPv6 loopback for a registered IPv4 loopback", "http://[::1]:5555/cb"},
		{"a private-use scheme with another path", "com.example.app:/other"},
		{"a private-use scheme in upper case", "COM.EXAMPLE.APP:/cb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				reg, err := NewStaticClients(publicClient, otherClient)
				if err != nil {
					t.Fatal(err)
				}
				o.Clients = reg
			})
			q := authzQuery(publicClient.ID, tt.redirectURI, newPKCE())
			rec := e.get(pathAuthorize + "?" + q.Encode())
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", rec.Code, rec.Body.String())
			}
			if loc := rec.Header().Get("Location"); loc != "" {
				t.Fatalf("redirected to %s", loc)
			}
			wantHTMLPage(t, rec)
		})
	}
}

// TestPKCEAttacksAreRefused plays the PKCE attacks of RFC 9700 §4.8 (PKCE downgrade)
// and §2.1.1, at both ends of the flow.
//
// RFC 7636 §4.6: the server "MUST verify it by calculating the code challenge from the
// received code_verifier and comparing it with the previously associated
// code_challenge, after first transforming it according to the code_challenge_method
// method specified by the client". RFC 9700 §2.1.1: "Authorization servers MUST
// mitigate PKCE Downgrade Attacks by ensuring that a token request containing a
// code_verifier parameter is accepted only if a code_challenge parameter was present
// in the authorization request". Missing challenges, plain when not allowed, a wrong
// verifier and the challenge sent as the verifier are in the authorize and token tests.
func TestPKCEAttacksAreRefused(t *testing.T) {
	t.Run("the verifier of another code", func(t *testing.T) {
		e := newEnv(t)
		mine, theirs := newPKCE(), newPKCE()
		code := e.code(trustedClient.ID, webRedirect, mine, nil)
		e.code(trustedClient.ID, webRedirect, theirs, nil)
		wantOAuthError(t, e.postForm(pathToken, codeForm(trustedClient.ID, code, theirs.verifier)), http.StatusBadRequest, "invalid_grant")
	})
	t.Run("an S256 code redeemed with its challenge as a plain verifier while plain is allowed", func(t *testing.T) {
		// The downgrade: an attacker who saw the challenge in the front channel sends
		// it as if the method had been plain. The method is the one stored with the
		// code, never one the token request could choose.
		e := newEnv(t, func(o *Options) { o.AllowPKCEPlain = true })
		p := newPKCE()
		code := e.code(trustedClient.ID, webRedirect, p, nil)
		wantOAuthError(t, e.postForm(pathToken, codeForm(trustedClient.ID, code, p.challenge)), http.StatusBadRequest, "invalid_grant")
		wantOAuthError(t, e.postForm(pathToken, withParam(codeForm(trustedClient.ID, code, p.challenge), "code_challenge_method", "plain")),
			http.StatusBadRequest, "invalid_grant")
	})
	for _, tt := range []struct{ name, verifier string }{
		{"a verifier longer than 128 characters", strings.Repeat("a", 129)},
		{"a verifier with characters outside the unreserved set", strings.Repeat("a", 42) + "+"},
		{"a verifier with a space", strings.Repeat("a", 42) + " "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			// A challenge that this very verifier would match, so only the format
			// rule can refuse it.
			sum := sha256.Sum256([]byte(tt.verifier))
			p := pkce{verifier: tt.verifier, challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
			code := e.code(trustedClient.ID, webRedirect, p, nil)
			wantOAuthError(t, e.postForm(pathToken, codeForm(trustedClient.ID, code, tt.verifier)), http.StatusBadRequest, "invalid_grant")
		})
	}
	t.Run("a challenge method in lower case, which is not S256", func(t *testing.T) {
		// RFC 7636 §4.3 names the methods "plain" and "S256"; they are case-sensitive.
		e := newEnv(t)
		q := authzQuery(trustedClient.ID, webRedirect, newPKCE())
		q.Set("code_challenge_method", "s256")
		back := location(t, e.get(pathAuthorize+"?"+q.Encode()))
		if back.Query().Get("error") != "invalid_request" || back.Query().Has("code") {
			t.Fatalf("redirect %s, want error=invalid_request", back)
		}
	})
}

func codeForm(clientID, code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
		"code_verifier": {verifier}, "client_id": {clientID}}
}

func withParam(v url.Values, k, val string) url.Values {
	v.Set(k, val)
	return v
}

// TestAForgedCodeOrRefreshTokenWithARealGrantIDRevokesNothing: the grant ID inside a
// code or token is not a secret, so it must never be enough to make the server revoke
// the grant, or an attacker who saw one token's grant ID could log the user out. Only
// a presented value whose hash matches a spent one counts as a replay (OAuth 2.1
// §4.1.3, §4.3.1).
func TestAForgedCodeOrRefreshTokenWithARealGrantIDRevokesNothing(t *testing.T) {
	forge := func(prefix, real string) string {
		grantID, ok := parseToken(prefix, real)
		if !ok {
			t.Fatalf("%q is not a %s", real, prefix)
		}
		return mintToken(prefix, grantID)
	}
	t.Run("a forged code before and after the real one is redeemed", func(t *testing.T) {
		e := newEnv(t)
		p := newPKCE()
		code := e.code(trustedClient.ID, webRedirect, p, nil)
		wantOAuthError(t, e.postForm(pathToken, codeForm(trustedClient.ID, forge(prefixCode, code), p.verifier)), http.StatusBadRequest, "invalid_grant")
		tok := e.exchange(trustedClient.ID, webRedirect, code, p)
		wantOAuthError(t, e.postForm(pathToken, codeForm(trustedClient.ID, forge(prefixCode, code), p.verifier)), http.StatusBadRequest, "invalid_grant")
		if e.introspect(tok.AccessToken)["active"] != true {
			t.Fatal("a forged code revoked the real grant")
		}
	})
	t.Run("a forged refresh token", func(t *testing.T) {
		e := newEnv(t)
		tok := e.issue()
		wantOAuthError(t, e.postForm(pathToken, refreshForm(forge(prefixRefresh, tok.RefreshToken))), http.StatusBadRequest, "invalid_grant")
		if e.introspect(tok.AccessToken)["active"] != true || e.introspect(tok.RefreshToken)["active"] != true {
			t.Fatal("a forged refresh token revoked the real grant")
		}
	})
}

// TestACodeRedeemedConcurrentlyIssuesTokensOnce races redemptions of one code. OAuth
// 2.1 §4.1.3: "the authorization server MUST deny the request and SHOULD revoke (when
// possible) all tokens previously issued based on that authorization code". Exactly
// one request may get tokens, and the others, being replays, revoke them.
func TestACodeRedeemedConcurrentlyIssuesTokensOnce(t *testing.T) {
	e := newEnv(t)
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, nil)
	const n = 8
	recs := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			recs[i] = e.postForm(pathToken, codeForm(trustedClient.ID, code, p.verifier))
		})
	}
	close(start)
	wg.Wait()
	var issued []tokens
	for _, rec := range recs {
		switch rec.Code {
		case http.StatusOK:
			var tok tokens
			decodeJSON(t, rec.Body, &tok)
			issued = append(issued, tok)
		case http.StatusBadRequest:
			wantOAuthError(t, rec, http.StatusBadRequest, "invalid_grant")
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
	if len(issued) != 1 {
		t.Fatalf("%d of %d concurrent redemptions got tokens, want exactly 1", len(issued), n)
	}
	for name, tok := range map[string]string{"access": issued[0].AccessToken, "refresh": issued[0].RefreshToken} {
		if e.introspect(tok)["active"] != false {
			t.Errorf("the %s token survived the replays", name)
		}
	}
}

// TestCallbackAttacks adds to TestCallbackShowsAnErrorPageWhenTheStateCannotBeTrusted
// (missing, forged, replayed, expired and other-browser states) what an attacker can do
// with the upstream's error responses. RFC 9700 §4.7 (CSRF) wants the state one-time
// and bound to the user agent; RFC 6749 §4.1.2.1 lets error_description carry only
// "human-readable ASCII" that a phishing page could abuse, so we never pass the
// upstream's on.
func TestCallbackAttacks(t *testing.T) {
	t.Run("an upstream error spends the state, so it cannot be replayed", func(t *testing.T) {
		e := newEnv(t)
		b, state := startLogin(t, e)
		first := location(t, b.get(callbackURL(url.Values{"error": {"access_denied"}, "state": {state}})))
		if first.Query().Get("error") != "access_denied" {
			t.Fatalf("first answer %s", first)
		}
		rec := b.get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {state}}))
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
			t.Fatalf("replay after an error: %d, Location %q", rec.Code, rec.Header().Get("Location"))
		}
	})
	t.Run("an upstream error_description and error_uri are not passed on", func(t *testing.T) {
		e := newEnv(t)
		b, state := startLogin(t, e)
		lure := "Your account is locked. Call +1-555-0100 or visit https://evil.example.net"
		back := location(t, b.get(callbackURL(url.Values{"error": {"access_denied"}, "error_description": {lure},
			"error_uri": {"https://evil.example.net/help"}, "state": {state}})))
		if strings.Contains(back.String(), "evil") || strings.Contains(back.Query().Get("error_description"), "555") {
			t.Fatalf("the upstream's text reached the client: %s", back)
		}
	})
	t.Run("an upstream error code we do not know becomes server_error", func(t *testing.T) {
		e := newEnv(t)
		b, state := startLogin(t, e)
		back := location(t, b.get(callbackURL(url.Values{"error": {"<script>alert(1)</script>"}, "state": {state}})))
		if back.Query().Get("error") != "server_error" {
			t.Fatalf("redirect %s, want error=server_error", back)
		}
	})
}

// TestATokenIsAcceptedOnlyByTheResourceItWasIssuedFor runs a real login for one MCP
// server and presents the token to that server and to another, both using the resource
// package against this authorization server. RFC 8707 §2 and the MCP specification:
// "MCP servers MUST validate that access tokens were issued specifically for them as
// the intended audience"; RFC 9700 §4.10.2 (audience-restricted access tokens).
func TestATokenIsAcceptedOnlyByTheResourceItWasIssuedFor(t *testing.T) {
	mem := memory.New(memory.Options{Prefix: "audience"})
	t.Cleanup(func() { _ = mem.Close() })
	fe := newFlowEnv(t, []store.Store{mem}, true)
	tok := login(t, fe, flowResource)
	verifier := func(res string) *resource.Verifier {
		v, err := resource.New(resource.Config{
			Resource: res, AuthorizationServers: []string{fe.issuer}, ClientID: resourceServer.ID,
			ClientSecret: resourceServer.Secret, RequiredScopes: []string{"read"}, HTTPClient: fe.httpClient(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name, resource string
		ok             bool
	}{
		{"the resource the token was issued for accepts it", flowResource, true},
		{"another MCP server on another host refuses it", "https://other.example.com/mcp", false},
		{"another MCP server on the same host refuses it", "https://mcp.example.com/other", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := verifier(tt.resource).Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
			req := httptest.NewRequest(http.MethodGet, tt.resource, nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := rec.Code == http.StatusOK; got != tt.ok {
				t.Fatalf("status %d; WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
			if !tt.ok && !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q, want invalid_token", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// TestRegistrationAbuseIsRefused adds to TestRegisterRefusesInvalidMetadata,
// TestRegisterRefusesMalformedRequests and TestRegisterIsAbsentWhenDisabled the limits
// that keep registration from being a way to fill the store. RFC 7591 §3: open
// registration requests "MAY be rate-limited or otherwise limited to prevent a
// denial-of-service attack on the client registration endpoint".
func TestRegistrationAbuseIsRefused(t *testing.T) {
	uris := func(n int) string {
		var list []string
		for i := range n {
			list = append(list, `"http://127.0.0.1/cb`+strings.Repeat("x", i)+`"`)
		}
		return `{"token_endpoint_auth_method":"none","redirect_uris":[` + strings.Join(list, ",") + `]}`
	}
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"the most redirect URIs allowed", uris(maxRedirectURIs), http.StatusCreated, ""},
		{"one redirect URI too many", uris(maxRedirectURIs + 1), http.StatusBadRequest, "invalid_redirect_uri"},
		{"a redirect URI over 2000 characters", `{"redirect_uris":["https://app.example.com/` + strings.Repeat("a", 2000) + `"]}`, http.StatusBadRequest, "invalid_redirect_uri"},
		{"a vbscript: redirect URI", `{"application_type":"native","redirect_uris":["vbscript:msgbox(1)"]}`, http.StatusBadRequest, "invalid_redirect_uri"},
		{"JSON nested too deep to mean anything", `{"redirect_uris":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, http.StatusBadRequest, "invalid_client_metadata"},
		{"a JSON body with trailing garbage", `{"redirect_uris":["https://app.example.com/cb"]} {}`, http.StatusBadRequest, "invalid_client_metadata"},
		{"a JSON body that is cut short", `{"redirect_uris":["https://app.example.com/cb"`, http.StatusBadRequest, "invalid_client_metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.postJSON(pathRegister, tt.body)
			if tt.status == http.StatusCreated {
				if rec.Code != http.StatusCreated {
					t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
				}
				return
			}
			wantOAuthError(t, rec, tt.status, tt.code)
		})
	}
}

// TestRegistrationIsRateLimitedPerClientAddress: RFC 7591 §3, open registration
// requests "MAY be rate-limited or otherwise limited to prevent a denial-of-service
// attack on the client registration endpoint"; RFC 6585 §4 defines 429 with
// Retry-After. Each address has its own
// budget, refilled over time; behind a trusted proxy the address is the one it names
// in X-Forwarded-For, and nobody else can choose their address that way.
func TestRegistrationIsRateLimitedPerClientAddress(t *testing.T) {
	const body = `{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"]}`
	limit := RateLimit{Burst: 3, Every: 10 * time.Second}
	register := func(e *env, remote string, forwarded ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, testIssuer+pathRegister, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = remote
		for _, f := range forwarded {
			req.Header.Add("X-Forwarded-For", f)
		}
		return e.serve(req)
	}
	spend := func(t *testing.T, e *env, remote string, forwarded ...string) {
		t.Helper()
		for i := range limit.Burst {
			if rec := register(e, remote, forwarded...); rec.Code != http.StatusCreated {
				t.Fatalf("registration %d: %d %s", i+1, rec.Code, rec.Body.String())
			}
		}
	}
	wantLimited := func(t *testing.T, rec *httptest.ResponseRecorder, retryAfter string) {
		t.Helper()
		if ra := rec.Header().Get("Retry-After"); ra != retryAfter {
			t.Errorf("Retry-After %q, want %q", ra, retryAfter)
		}
		wantOAuthError(t, rec, http.StatusTooManyRequests, "temporarily_unavailable")
	}
	proxy := func(o *Options) {
		o.RegistrationRateLimit = limit
		o.TrustedProxies = parsePrefixes(t, "10.0.0.0/8")
	}

	t.Run("an address over its budget gets 429 with Retry-After, then recovers", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.RegistrationRateLimit = limit })
		spend(t, e, "192.0.2.1:1111")
		wantLimited(t, register(e, "192.0.2.1:2222"), "10")
		e.clock.Advance(4 * time.Second)
		wantLimited(t, register(e, "192.0.2.1:3333"), "6")
		e.clock.Advance(6 * time.Second)
		if rec := register(e, "192.0.2.1:4444"); rec.Code != http.StatusCreated {
			t.Fatalf("after Retry-After: %d %s", rec.Code, rec.Body.String())
		}
	})
	t.Run("other addresses keep their own budget", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.RegistrationRateLimit = limit })
		spend(t, e, "192.0.2.1:1111")
		spend(t, e, "192.0.2.2:1111")
	})
	t.Run("the addresses of one IPv6 /64 share a budget", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.RegistrationRateLimit = limit })
		spend(t, e, "[2001:db8:1:2::1]:1111")
		wantLimited(t, register(e, "[2001:db8:1:2:ffff::9]:1111"), "10")
		spend(t, e, "[2001:db8:1:3::1]:1111")
	})
	t.Run("X-Forwarded-For from an untrusted peer is ignored", func(t *testing.T) {
		e := newEnv(t, proxy)
		spend(t, e, "192.0.2.1:1111", "198.51.100.1")
		wantLimited(t, register(e, "192.0.2.1:1111", "198.51.100.2"), "10")
	})
	t.Run("behind a trusted proxy each forwarded client has its own budget", func(t *testing.T) {
		e := newEnv(t, proxy)
		spend(t, e, "10.1.1.1:1111", "198.51.100.1")
		wantLimited(t, register(e, "10.2.2.2:1111", "198.51.100.1"), "10")
		spend(t, e, "10.1.1.1:1111", "198.51.100.2")
	})
	t.Run("a client cannot escape its budget by prepending addresses to X-Forwarded-For", func(t *testing.T) {
		e := newEnv(t, proxy)
		// The proxy appends the peer it saw; what the client sent stays on the left.
		spend(t, e, "10.1.1.1:1111", "203.0.113.1, 198.51.100.1")
		wantLimited(t, register(e, "10.1.1.1:1111", "203.0.113.2, 198.51.100.1"), "10")
		wantLimited(t, register(e, "10.1.1.1:1111", "203.0.113.3", "198.51.100.1, 10.3.3.3"), "10")
	})
	t.Run("a negative burst turns the limit off", func(t *testing.T) {
		// The per-source count of live registrations is a limit of its own: off too.
		e := newEnv(t, func(o *Options) { o.RegistrationRateLimit, o.RegistrationMaxPerSource = RateLimit{Burst: -1}, -1 })
		for i := range 2 * DefaultRegistrationRateLimit.Burst {
			if rec := register(e, "192.0.2.1:1111"); rec.Code != http.StatusCreated {
				t.Fatalf("registration %d: %d", i+1, rec.Code)
			}
		}
	})
	t.Run("the default limit applies when none is set", func(t *testing.T) {
		e := newEnv(t)
		for range DefaultRegistrationRateLimit.Burst {
			register(e, "192.0.2.1:1111")
		}
		wantOAuthError(t, register(e, "192.0.2.1:1111"), http.StatusTooManyRequests, "temporarily_unavailable")
	})
}

// login runs a public client's whole authorization-code flow against fe with
// golang.org/x/oauth2, for resource (none when empty), and returns its tokens.
func login(t *testing.T, fe *flowEnv, res string) *oauth2.Token {
	t.Helper()
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, fe.httpClient())
	meta := fe.discover(t)
	reg := fe.registerClient(t, meta)
	cfg := &oauth2.Config{ClientID: reg.ClientID, RedirectURL: flowRedirectUsed, Scopes: []string{"read"},
		Endpoint: oauth2.Endpoint{AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if res != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", res))
	}
	back := fe.browse(t, cfg.AuthCodeURL("st", opts...))
	tok, err := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

func parsePrefixes(t *testing.T, cidrs ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

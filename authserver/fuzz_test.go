package authserver

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store/memory"
)

// Fuzz targets for the parsers an attacker feeds directly (OAuth 2.1 §7.11, injection
// and input validation). Their seed corpora in testdata/fuzz run with every go test;
// `make fuzz` runs each target for FUZZTIME. Each target checks properties, not just
// the absence of a panic: what is accepted is safe, what is refused is refused with
// the RFC's error in the RFC's shape, and nothing is a 5xx.

// FuzzValidateRedirectURI: whatever registration accepts is a URI that can be
// redirected to safely (RFC 9700 §4.1, RFC 8252 §7, OAuth 2.1 §2.3.1), and matches
// itself exactly.
func FuzzValidateRedirectURI(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string, native bool) {
		appType := AppTypeWeb
		if native {
			appType = AppTypeNative
		}
		if validateRedirectURI(raw, appType) != nil {
			return
		}
		if strings.ContainsAny(raw, "#*") || strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) || len(raw) > 2000 {
			t.Fatalf("accepted %q: fragment, wildcard, space or control character, or too long", raw)
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" {
			t.Fatalf("accepted %q, which does not parse as an absolute URI", raw)
		}
		scheme := strings.ToLower(u.Scheme)
		switch {
		case slices.Contains(blockedSchemes, scheme):
			t.Fatalf("accepted %q with the scheme %s", raw, scheme)
		case scheme == "https":
			if u.Host == "" || u.User != nil {
				t.Fatalf("accepted https URI %q without a host or with user info", raw)
			}
		case scheme == "http":
			if u.User != nil || !isLoopbackHost(u.Hostname()) {
				t.Fatalf("accepted http URI %q that is not a loopback URI without user info", raw)
			}
		default:
			if !native || !strings.Contains(scheme, ".") {
				t.Fatalf("accepted private-use URI %q for a %s app", raw, appType)
			}
		}
		c := &client{RedirectURIs: []string{raw}}
		if !c.matchRedirectURI(raw) {
			t.Fatalf("registered %q does not match itself", raw)
		}
	})
}

// FuzzMatchRedirectURI: a requested redirect URI matches a registered one only when it
// is the same string, or (RFC 8252 §7.3) the same loopback http URI on another port.
func FuzzMatchRedirectURI(f *testing.F) {
	f.Fuzz(func(t *testing.T, registered, requested string) {
		if validateRedirectURI(registered, AppTypeNative) != nil {
			return
		}
		c := &client{RedirectURIs: []string{registered}}
		if !c.matchRedirectURI(requested) || requested == registered {
			return
		}
		reg, err1 := url.Parse(registered)
		req, err2 := url.Parse(requested)
		if err1 != nil || err2 != nil {
			t.Fatalf("%q matched %q without parsing", requested, registered)
		}
		if reg.Scheme != "http" || req.Scheme != "http" || !isLoopbackHost(req.Hostname()) || req.Hostname() != reg.Hostname() {
			t.Fatalf("%q matched %q, and they are not both loopback http URIs on one host", requested, registered)
		}
		if req.User != nil || req.Fragment != "" || strings.Contains(requested, "#") {
			t.Fatalf("%q matched %q with user info or a fragment", requested, registered)
		}
		if req.EscapedPath() != reg.EscapedPath() || req.RawQuery != reg.RawQuery {
			t.Fatalf("%q matched %q with another path or query", requested, registered)
		}
		if p := req.Port(); p != "" && !isPort(p) {
			t.Fatalf("%q matched %q with port %q", requested, registered, p)
		}
		if err := validateRedirectURI(requested, AppTypeNative); err != nil {
			t.Fatalf("%q matched %q but would not register: %v", requested, registered, err)
		}
	})
}

// FuzzRegistration posts arbitrary bodies to the registration endpoint (RFC 7591).
// Every answer is 201 with metadata the server would accept again, or an RFC 7591 §3.2.2
// error with an RFC 6749 §5.2-safe description; never a 5xx.
func FuzzRegistration(f *testing.F) {
	srv := newFuzzServer(f, nil)
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest(http.MethodPost, testIssuer+pathRegister, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusCreated:
			var r registration
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("201 with a body that is not registration JSON: %v", err)
			}
			if !strings.HasPrefix(r.ClientID, prefixClientID) || len(r.RedirectURIs) == 0 || len(r.RedirectURIs) > maxRedirectURIs {
				t.Fatalf("registered %+v", r)
			}
			for _, u := range r.RedirectURIs {
				if err := validateRedirectURI(u, r.ApplicationType); err != nil {
					t.Fatalf("registered a redirect URI it refuses: %v", err)
				}
			}
			if (r.ClientSecret != "") != (r.TokenEndpointAuthMethod != AuthMethodNone) {
				t.Fatalf("auth method %q with secret %t", r.TokenEndpointAuthMethod, r.ClientSecret != "")
			}
			if _, err := srv.resolveClient(t.Context(), r.ClientID); err != nil {
				t.Fatalf("the registered client cannot be resolved: %v", err)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			wantRFCError(t, rec, errCodeInvalidClientMetadata, errCodeInvalidRedirectURI, errCodeInvalidRequest)
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	})
}

// FuzzTokenRequest posts arbitrary bodies and Authorization headers to the token
// endpoint: client authentication (RFC 6749 §2.3), the form parser and both grants.
// Every answer is an RFC 6749 §5.2 error (there is no valid code to find), 401 ones
// with a challenge; never a 5xx.
func FuzzTokenRequest(f *testing.F) {
	srv := newFuzzServer(f, nil)
	f.Fuzz(func(t *testing.T, body, contentType, authorization string) {
		req := httptest.NewRequest(http.MethodPost, testIssuer+pathToken, strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			wantRFCError(t, rec, errCodeInvalidRequest, errCodeInvalidGrant, errCodeUnsupportedGrantType,
				errCodeUnauthorizedClient, errCodeInvalidScope, errCodeInvalidTarget)
		case http.StatusUnauthorized:
			wantRFCError(t, rec, errCodeInvalidClient)
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("401 without a Basic challenge: %v", rec.Header())
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	})
}

// verifierPattern is RFC 7636 §4.1: code-verifier = 43*128unreserved.
var verifierPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// FuzzPKCE checks the verifier syntax (RFC 7636 §4.1), the challenge check at the
// authorization endpoint (§4.2, §4.3; OAuth 2.1 §4.1.1) and the comparison at the
// token endpoint (§4.6): a verifier matches only the challenge computed from it by the
// stored method.
func FuzzPKCE(f *testing.F) {
	strict := newFuzzServer(f, nil)
	plain := newFuzzServer(f, func(o *Options) { o.AllowPKCEPlain = true })
	f.Fuzz(func(t *testing.T, verifier, challenge, method string) {
		if got, want := validVerifier(verifier), verifierPattern.MatchString(verifier); got != want {
			t.Fatalf("validVerifier(%q) = %t, RFC 7636 says %t", verifier, got, want)
		}
		sum := sha256.Sum256([]byte(verifier))
		s256 := base64.RawURLEncoding.EncodeToString(sum[:])
		if !pkceMatches("S256", s256, verifier) {
			t.Fatalf("the S256 challenge of %q does not match it", verifier)
		}
		if pkceMatches(method, challenge, verifier) {
			ok := method == "S256" && challenge == s256 || method == "plain" && challenge == verifier
			if !ok {
				t.Fatalf("pkceMatches(%q, %q, %q) is true", method, challenge, verifier)
			}
		}
		for _, srv := range []*Server{strict, plain} {
			got, oe := srv.checkChallenge(challenge, method)
			if oe != nil {
				if oe.Code != errCodeInvalidRequest {
					t.Fatalf("checkChallenge error %q", oe.Code)
				}
				continue
			}
			switch got {
			case "S256":
				if method != "S256" || len(challenge) != 43 || !isBase64URL(challenge) {
					t.Fatalf("accepted S256 challenge %q (method %q)", challenge, method)
				}
			case "plain":
				if !srv.opts.AllowPKCEPlain || (method != "plain" && method != "") || !validVerifier(challenge) {
					t.Fatalf("accepted plain challenge %q (method %q, plain allowed %t)", challenge, method, srv.opts.AllowPKCEPlain)
				}
			default:
				t.Fatalf("checkChallenge accepted method %q", got)
			}
		}
	})
}

// newFuzzServer is a Server on a memory store with the static test clients, built once
// per fuzz target, with no rate limit (the fuzzer is one address).
func newFuzzServer(f *testing.F, mod func(*Options)) *Server {
	f.Helper()
	mem := memory.New(memory.Options{Prefix: "fuzz"})
	f.Cleanup(func() { _ = mem.Close() })
	reg, err := NewStaticClients(publicClient, trustedClient, confClient, postClient, noRefresh, scopedClient, resourceServer, plainRS)
	if err != nil {
		f.Fatal(err)
	}
	opts := Options{
		Issuer: testIssuer, ScopesSupported: []string{"read", "write", "offline_access"}, DefaultScopes: []string{"read"},
		DynamicRegistration: true, Store: mem, Upstream: newFakeUpstream(time.Now()), MasterKey: testKey, Clients: reg,
		RegistrationRateLimit: RateLimit{Burst: -1},
		// Every fuzzed registration comes from one address.
		RegistrationMaxPerSource: -1,
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		f.Fatal(err)
	}
	return srv
}

// wantRFCError checks an RFC 6749 §5.2 error response: JSON, no-store, one of the
// expected codes, and an error_description of the allowed characters only
// (%x20-21 / %x23-5B / %x5D-7E).
func wantRFCError(t *testing.T, rec *httptest.ResponseRecorder, codes ...string) {
	t.Helper()
	if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("error headers %v", rec.Header())
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", rec.Body.String(), err)
	}
	if !slices.Contains(codes, body["error"]) {
		t.Fatalf("error %q, want one of %v (status %d)", body["error"], codes, rec.Code)
	}
	for _, c := range []byte(body["error_description"]) {
		if c < 0x20 || c == '"' || c == '\\' || c > 0x7e {
			t.Fatalf("error_description %q has %q, which RFC 6749 §5.2 forbids", body["error_description"], c)
		}
	}
}

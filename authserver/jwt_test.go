package authserver

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/internal/testutil/jwtcheck"
	"github.com/mcpauth/mcpauth/internal/testutil/signingkeys"
)

// The tests in this file check our JWTs with jwtcheck (golang-jwt and a JWKS decoded
// by hand), not with go-jose, which signs them.

// publicKeys decodes a JWKS, failing the test on a bad one.
func publicKeys(t *testing.T, body []byte) map[string]crypto.PublicKey {
	t.Helper()
	keys, err := jwtcheck.ParseJWKS(body)
	if err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	return keys
}

var parseIndependently = jwtcheck.Verify

// verifyIndependently fetches the JWKS from jwksURI and verifies tok with it.
func verifyIndependently(t *testing.T, c *http.Client, jwksURI, tok string) jwt.MapClaims {
	t.Helper()
	if jwksURI == "" {
		t.Fatal("the metadata has no jwks_uri")
	}
	resp, err := c.Get(jwksURI)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS: %d %s", resp.StatusCode, body)
	}
	claims, err := parseIndependently(publicKeys(t, []byte(body)), tok, time.Now())
	if err != nil {
		t.Fatalf("golang-jwt refuses our token: %v", err)
	}
	return claims
}

// fetchJWKS reads the JWKS of an in-process env.
func (e *env) jwks() map[string]crypto.PublicKey {
	e.t.Helper()
	rec := e.get(pathJWKS)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("JWKS: %d %s", rec.Code, rec.Body.String())
	}
	return publicKeys(e.t, rec.Body.Bytes())
}

// testSigningKey makes a signing key of alg.
func testSigningKey(t *testing.T, kid, alg string, activate, publishUntil time.Time) config.SigningKey {
	t.Helper()
	k, err := signingkeys.Generate(kid, alg, activate, publishUntil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// parsedKeys runs keys through the file format and its parser, as the app does.
func parsedKeys(t *testing.T, keys ...config.SigningKey) []config.ParsedSigningKey {
	t.Helper()
	data, err := signingkeys.Marshal(keys...)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := config.ParseSigningKeys(data)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

func withKeys(k *SigningKeys) func(*Options) {
	return func(o *Options) { o.SigningKeys = k }
}

func TestJWTAccessTokensVerifyWithAnIndependentLibrary(t *testing.T) {
	for _, alg := range []string{config.SigningES256, config.SigningRS256} {
		t.Run(alg, func(t *testing.T) {
			clk := newClock()
			keys, err := NewSigningKeys(parsedKeys(t, testSigningKey(t, "k1", alg, clk.Now().Add(-time.Hour), time.Time{})))
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, withKeys(keys), func(o *Options) { o.Now = clk.Now })
			p := newPKCE()
			code := e.code(trustedClient.ID, webRedirect, p, url.Values{"scope": {"read write"}, "resource": {"https://mcp.example.com/a"}})
			tok := e.exchange(trustedClient.ID, webRedirect, code, p)

			header := decodeSegment(t, tok.AccessToken, 0)
			if header["alg"] != alg || header["kid"] != "k1" || header["typ"] != "at+jwt" {
				t.Errorf("header %v", header)
			}
			claims, err := parseIndependently(e.jwks(), tok.AccessToken, clk.Now())
			if err != nil {
				t.Fatalf("golang-jwt: %v", err)
			}
			now := e.srv.now().Unix()
			want := map[string]any{
				"iss": testIssuer, "sub": "user-1", "aud": "https://mcp.example.com/a", "client_id": trustedClient.ID,
				"scope": "read write", "iat": float64(now), "nbf": float64(now), "exp": float64(now + int64(DefaultAccessTokenTTL/time.Second)),
			}
			for k, v := range want {
				if claims[k] != v {
					t.Errorf("claim %s = %v, want %v", k, claims[k], v)
				}
			}
			gid, _ := parseToken(prefixRefresh, tok.RefreshToken)
			if claims["gid"] != gid || claims["jti"] == "" || len(claims) != 10 {
				t.Errorf("claims %v: want gid %s, a jti, and nothing else", claims, gid)
			}
			if got := e.introspect(tok.AccessToken); got["active"] != true || got["sub"] != "user-1" {
				t.Errorf("introspection %v", got)
			}
		})
	}
}

func decodeSegment(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a compact JWS", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestJWTAudienceIsAnArrayForSeveralResourcesAndTheIssuerForNone(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Now = time.Now })
	p := newPKCE()
	two := url.Values{"resource": {"https://mcp.example.com/a", "https://mcp.example.com/b"}}
	tok := e.exchange(trustedClient.ID, webRedirect, e.code(trustedClient.ID, webRedirect, p, two), p)
	if aud := decodeSegment(t, tok.AccessToken, 1)["aud"]; fmt.Sprint(aud) != "[https://mcp.example.com/a https://mcp.example.com/b]" {
		t.Errorf("aud %v, want both resources", aud)
	}
	p = newPKCE()
	tok = e.exchange(trustedClient.ID, webRedirect, e.code(trustedClient.ID, webRedirect, p, nil), p)
	if aud := decodeSegment(t, tok.AccessToken, 1)["aud"]; aud != testIssuer {
		t.Errorf("aud %v, want the issuer", aud)
	}
}

// TestTokensFromBeforeAndAfterAKeyRotationBothVerify rewrites the keys as the operator
// rotates them: the new key published ahead, then active; the old one published until
// its last token expires, then gone.
func TestTokensFromBeforeAndAfterAKeyRotationBothVerify(t *testing.T) {
	start := time.Now()
	old := testSigningKey(t, "old", config.SigningES256, start.Add(-time.Hour), time.Time{})
	keys, err := NewSigningKeys(parsedKeys(t, old))
	if err != nil {
		t.Fatal(err)
	}
	offset := time.Duration(0)
	now := func() time.Time { return time.Now().Add(offset) }
	e := newEnv(t, withKeys(keys), func(o *Options) { o.Now = now; o.AccessTokenTTL = 10 * time.Minute })
	before := e.issue()
	beforeAt := now()

	// Rotation: the new key is published an access-token lifetime before it signs.
	next := testSigningKey(t, "new", config.SigningES256, start.Add(15*time.Minute), time.Time{})
	old.PublishUntil = start.Add(15*time.Minute + 10*time.Minute)
	if err := keys.Replace(parsedKeys(t, old, next)); err != nil {
		t.Fatal(err)
	}
	if jwks := e.jwks(); len(jwks) != 2 {
		t.Fatalf("JWKS during the overlap has %d keys, want old and new", len(jwks))
	}
	if kid := decodeSegment(t, e.issue().AccessToken, 0)["kid"]; kid != "old" {
		t.Errorf("a token signed before the new key activates has kid %v", kid)
	}

	offset = 16 * time.Minute // the new key is active; the old one still published
	after := e.issue()
	afterAt := now()
	if kid := decodeSegment(t, after.AccessToken, 0)["kid"]; kid != "new" {
		t.Fatalf("after activation the token has kid %v, want new", kid)
	}
	jwks := e.jwks()
	// The old token was signed 16 minutes ago on the server's clock: check it as of its
	// issue time, as a verifier would have then, and now that it has expired its key.
	if _, err := parseIndependently(jwks, before.AccessToken, beforeAt); err != nil {
		t.Errorf("the token from before the rotation fails: %v", err)
	}
	if _, err := parseIndependently(jwks, after.AccessToken, now()); err != nil {
		t.Errorf("the token from after the rotation fails: %v", err)
	}
	if e.introspect(after.AccessToken)["active"] != true {
		t.Error("introspection refuses the new key's token")
	}

	offset = 26 * time.Minute // past the old key's publishUntil
	jwks = e.jwks()
	if _, ok := jwks["old"]; ok || len(jwks) != 1 {
		t.Fatalf("JWKS after publishUntil: %v", jwks)
	}
	if _, err := parseIndependently(jwks, before.AccessToken, beforeAt); err == nil {
		t.Error("a retired key's token still verifies")
	}
	if _, err := parseIndependently(jwks, after.AccessToken, afterAt); err != nil {
		t.Errorf("the new key's token fails after the old key retired: %v", err)
	}
}

func TestARetiredKeysTokensAreInactive(t *testing.T) {
	clk := newClock()
	k := testSigningKey(t, "k1", config.SigningES256, clk.Now().Add(-time.Hour), clk.Now().Add(time.Hour))
	keys, err := NewSigningKeys(parsedKeys(t, k))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withKeys(keys), func(o *Options) { o.Now = clk.Now })
	e.clock = clk
	tok := e.issue()
	if e.introspect(tok.AccessToken)["active"] != true {
		t.Fatal("a fresh token is inactive")
	}
	// The key leaves the JWKS while the token would still be alive in the store (a
	// publishUntil set too early): the token is dead everywhere, introspection included.
	next := testSigningKey(t, "k2", config.SigningES256, clk.Now(), time.Time{})
	k.PublishUntil = clk.Now().Add(time.Minute)
	if err := keys.Replace(parsedKeys(t, k, next)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	if got := e.introspect(tok.AccessToken); got["active"] != false {
		t.Errorf("introspection of a retired key's token: %v", got)
	}
}

func TestForgedOrAlteredJWTsAreInactive(t *testing.T) {
	e := newEnv(t)
	tok := e.issue().AccessToken
	parts := strings.Split(tok, ".")
	otherKeys, err := GenerateSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	claims := decodeSegment(t, tok, 1)
	resign := func(mod func(c *accessClaims), keys *SigningKeys) string {
		var c accessClaims
		raw, _ := json.Marshal(claims)
		_ = json.Unmarshal(raw, &c)
		mod(&c)
		s, err := keys.sign(&c, e.srv.now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	b64 := base64.RawURLEncoding.EncodeToString
	tests := []struct{ name, tok string }{
		{"another key, same kid name space", resign(func(*accessClaims) {}, otherKeys)},
		{"the payload swapped", parts[0] + "." + b64([]byte(`{"iss":"`+testIssuer+`","sub":"mallory"}`)) + "." + parts[2]},
		{"alg none", b64([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."},
		{"the signature cut", parts[0] + "." + parts[1] + "."},
		{"a typ other than at+jwt", resignHeader(t, e.srv.signing, parts[1], "JWT")},
		{"another issuer", resign(func(c *accessClaims) { c.Issuer = "https://evil.example.com" }, e.srv.signing)},
		{"expired", resign(func(c *accessClaims) { c.Expiry = e.srv.now().Add(-time.Second).Unix() }, e.srv.signing)},
		{"not yet valid", resign(func(c *accessClaims) { c.NotBefore = e.srv.now().Add(time.Hour).Unix() }, e.srv.signing)},
		{"a jti never issued", resign(func(c *accessClaims) { c.JTI = randomString(jtiBytes) }, e.srv.signing)},
		{"another grant", resign(func(c *accessClaims) { c.GrantID = newGrantID() }, e.srv.signing)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.introspect(tt.tok); got["active"] != false || len(got) != 1 {
				t.Errorf("introspection %v, want only active false", got)
			}
		})
	}
	if e.introspect(tok)["active"] != true {
		t.Error("the genuine token is inactive")
	}
}

// resignHeader signs payload (base64url) with keys' active key under a header with typ.
func resignHeader(t *testing.T, keys *SigningKeys, payload, typ string) string {
	t.Helper()
	st := keys.state.Load()
	key := st.keys[0]
	h, _ := json.Marshal(map[string]string{"alg": key.Algorithm, "kid": key.KeyID, "typ": typ})
	input := base64.RawURLEncoding.EncodeToString(h) + "." + payload
	sig, err := jwt.SigningMethodES256.Sign(input, key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestMetadataAndJWKSPublishTheKeys(t *testing.T) {
	e := newEnv(t)
	var m Metadata
	decodeJSON(t, e.get(wellKnownAS).Body, &m)
	if m.JWKSURI != testIssuer+pathJWKS {
		t.Errorf("jwks_uri %q", m.JWKSURI)
	}
	rec := e.get(pathJWKS)
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "public, max-age=60" ||
		rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("JWKS: %d %v", rec.Code, rec.Header())
	}
	if keys := publicKeys(t, rec.Body.Bytes()); len(keys) != 1 {
		t.Errorf("JWKS has %d keys, want the generated one", len(keys))
	}
	wantOAuthError(t, e.postForm(pathJWKS, url.Values{}), http.StatusMethodNotAllowed, "invalid_request")

	opaque := newEnv(t, func(o *Options) { o.AccessTokenFormat = config.AccessTokenOpaque })
	m = Metadata{}
	decodeJSON(t, opaque.get(wellKnownAS).Body, &m)
	if m.JWKSURI != "" {
		t.Errorf("an opaque-token server without keys advertises jwks_uri %q", m.JWKSURI)
	}
	if body := opaque.get(pathJWKS).Body.String(); body != `{"keys":[]}` {
		t.Errorf("opaque-token server JWKS %s", body)
	}
}

func TestReadyzIsNotReadyWithoutAnActiveKey(t *testing.T) {
	clk := newClock()
	keys, err := NewSigningKeys(parsedKeys(t, testSigningKey(t, "later", config.SigningES256, clk.Now().Add(time.Hour), time.Time{})))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withKeys(keys), func(o *Options) { o.Now = clk.Now })
	rec := e.get("/readyz")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no signing key is active yet") {
		t.Fatalf("readyz: %d %s", rec.Code, rec.Body.String())
	}
	// Such a key is published already, and a token request is told to retry.
	if len(publicKeysOf(t, e)) != 1 {
		t.Error("a key that is not active yet is not published")
	}
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, nil)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
		"code_verifier": {p.verifier}, "client_id": {trustedClient.ID}}
	wantOAuthError(t, e.postForm(pathToken, form), http.StatusServiceUnavailable, "temporarily_unavailable")

	clk.Advance(time.Hour)
	if rec := e.get("/readyz"); rec.Code != http.StatusOK {
		t.Fatalf("readyz once the key is active: %d %s", rec.Code, rec.Body.String())
	}
}

func publicKeysOf(t *testing.T, e *env) map[string]crypto.PublicKey {
	t.Helper()
	return publicKeys(t, httpRecorder(e.srv.Handler(), pathJWKS).Body.Bytes())
}

// The operator, the resource package and the docs name these paths through config.
func TestTheJWKSAndFeedPathsAreConfigs(t *testing.T) {
	if pathJWKS != config.PathJWKS || pathRevocations != config.PathRevocations {
		t.Fatalf("server paths %s, %s; config says %s, %s", pathJWKS, pathRevocations, config.PathJWKS, config.PathRevocations)
	}
}

// forget empties the cache, for the benchmark of a first verification.
func (c *verifiedJWTs) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}

// BenchmarkJWT measures what a JWT adds to a token request (sign) and to an
// introspection (verify; verify-again for a token verified before), per algorithm.
func BenchmarkJWT(b *testing.B) {
	for _, alg := range []string{config.SigningES256, config.SigningRS256} {
		key, err := signingkeys.Generate("k", alg, time.Unix(0, 0), time.Time{})
		if err != nil {
			b.Fatal(err)
		}
		data, _ := signingkeys.Marshal(key)
		parsed, err := config.ParseSigningKeys(data)
		if err != nil {
			b.Fatal(err)
		}
		keys, err := NewSigningKeys(parsed)
		if err != nil {
			b.Fatal(err)
		}
		s := &Server{signing: keys, issuer: testIssuer, now: time.Now}
		now := time.Now()
		rec := store.Token{GrantID: newGrantID(), ClientID: "c", UserID: "u", Scope: "mcp",
			Resource: []string{"https://mcp.example.com/"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
		tok, _, err := s.mintJWT(rec, now)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(alg+"/sign", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.mintJWT(rec, now); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/verify", func(b *testing.B) {
			for b.Loop() {
				s.verified.forget()
				if _, ok := s.verifyJWT(tok); !ok {
					b.Fatal("refused")
				}
			}
		})
		b.Run(alg+"/verify-again", func(b *testing.B) {
			for b.Loop() {
				if _, ok := s.verifyJWT(tok); !ok {
					b.Fatal("refused")
				}
			}
		})
	}
}

// FuzzVerifyJWT: whatever our verifier accepts, golang-jwt accepts too against the
// published JWKS, and it names our issuer, a jti and a well-formed grant ID. Seeds: a
// genuine token of each algorithm and some of their mutations.
func FuzzVerifyJWT(f *testing.F) {
	now := time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)
	var parsed []config.ParsedSigningKey
	for i, alg := range []string{config.SigningES256, config.SigningRS256} {
		key, err := signingkeys.Generate(fmt.Sprintf("k%d", i), alg, now.Add(-time.Hour), time.Time{})
		if err != nil {
			f.Fatal(err)
		}
		data, _ := signingkeys.Marshal(key)
		p, err := config.ParseSigningKeys(data)
		if err != nil {
			f.Fatal(err)
		}
		parsed = append(parsed, p...)
	}
	var servers []*Server
	for i := range parsed {
		keys, err := NewSigningKeys(parsed[i : i+1])
		if err != nil {
			f.Fatal(err)
		}
		servers = append(servers, &Server{signing: keys, issuer: testIssuer, now: func() time.Time { return now }})
	}
	both, err := NewSigningKeys(parsed)
	if err != nil {
		f.Fatal(err)
	}
	verifier := &Server{signing: both, issuer: testIssuer, now: func() time.Time { return now }}
	jwksBody, err := both.jwks(now)
	if err != nil {
		f.Fatal(err)
	}
	published, err := jwtcheck.ParseJWKS(jwksBody)
	if err != nil {
		f.Fatal(err)
	}
	rec := store.Token{GrantID: "0123456789abcdef0123456789abcdef", ClientID: "c", UserID: "u", Scope: "mcp",
		Resource: []string{"https://mcp.example.com/"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	for _, s := range servers {
		tok, _, err := s.mintJWT(rec, now)
		if err != nil {
			f.Fatal(err)
		}
		parts := strings.Split(tok, ".")
		f.Add(tok)
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(tok[:len(tok)-1])
		f.Add(parts[0] + "." + strings.ToUpper(parts[1]) + "." + parts[2])
		f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".")
	}
	f.Fuzz(func(t *testing.T, tok string) {
		claims, ok := verifier.verifyJWT(tok)
		if !ok {
			return
		}
		if _, err := jwtcheck.Verify(published, tok, now); err != nil {
			t.Fatalf("accepted %q, which golang-jwt refuses: %v", tok, err)
		}
		if claims.Issuer != testIssuer || claims.JTI == "" || len(claims.GrantID) != grantIDLen || !isLowerHex(claims.GrantID) {
			t.Fatalf("accepted %q with claims %+v", tok, claims)
		}
	})
}

// TestSwitchingTheFormatKeepsLiveTokensWorking: a server restarted with the other
// format (same store, master key and signing keys) accepts the tokens issued before.
func TestSwitchingTheFormatKeepsLiveTokensWorking(t *testing.T) {
	keys, err := GenerateSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	before := newEnv(t, withKeys(keys), func(o *Options) { o.AccessTokenFormat = config.AccessTokenOpaque })
	opts := before.srv.opts
	opts.AccessTokenFormat, opts.Registerer, opts.Gatherer = config.AccessTokenJWT, nil, nil
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	after := &env{t: t, srv: srv, clock: before.clock, store: before.store, up: before.up}

	old := before.issue()
	if looksLikeJWT(old.AccessToken) {
		t.Fatal("the opaque server issued a JWT")
	}
	if after.introspect(old.AccessToken)["active"] != true {
		t.Error("after the switch to jwt, an opaque token issued before is inactive")
	}
	rec := after.postForm(pathToken, refreshForm(old.RefreshToken))
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh across the switch: %d %s", rec.Code, rec.Body.String())
	}
	var next tokens
	decodeJSON(t, rec.Body, &next)
	if !looksLikeJWT(next.AccessToken) {
		t.Fatalf("the jwt server refreshed into %.12s...", next.AccessToken)
	}
	if before.introspect(next.AccessToken)["active"] != true {
		t.Error("switched back to opaque, a JWT issued before is inactive")
	}
	if rec := before.postForm(pathRevoke, url.Values{"token": {next.AccessToken}, "client_id": {trustedClient.ID}}); rec.Code != http.StatusOK {
		t.Fatalf("revoking a JWT at the opaque server: %d", rec.Code)
	}
	if after.introspect(next.AccessToken)["active"] != false {
		t.Error("a JWT revoked at the opaque server is still active")
	}
}

// TestAVerifiedTokenIsCheckedAgainstTheKeysOfTheMoment: introspection remembers a
// verified token, but not past its key's retirement, nor when its kid names other key
// material after a rewrite of the keys file.
func TestAVerifiedTokenIsCheckedAgainstTheKeysOfTheMoment(t *testing.T) {
	clk := newClock()
	k := testSigningKey(t, "k1", config.SigningES256, clk.Now().Add(-time.Hour), time.Time{})
	keys, err := NewSigningKeys(parsedKeys(t, k))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withKeys(keys), func(o *Options) { o.Now = clk.Now })
	tok := e.issue()
	for range 2 { // verified, then remembered
		if e.introspect(tok.AccessToken)["active"] != true {
			t.Fatal("a fresh token is inactive")
		}
	}
	impostor := testSigningKey(t, "k1", config.SigningES256, clk.Now().Add(-time.Hour), time.Time{})
	if err := keys.Replace(parsedKeys(t, impostor)); err != nil {
		t.Fatal(err)
	}
	if e.introspect(tok.AccessToken)["active"] != false {
		t.Error("a token stays active after its kid was given another key")
	}
	if err := keys.Replace(parsedKeys(t, k)); err != nil {
		t.Fatal(err)
	}
	if e.introspect(tok.AccessToken)["active"] != true {
		t.Fatal("the token is inactive with its key back")
	}
	clk.Advance(DefaultAccessTokenTTL)
	if e.introspect(tok.AccessToken)["active"] != false {
		t.Error("a remembered token outlived its exp")
	}
}

package authserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/memory"
	redisstore "github.com/mcpauth/mcpauth/authserver/store/redis"
	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// The MCP client's redirect URI as registered, and as used: a loopback URI on a port
// of the moment (RFC 8252 §7.3). Nothing listens there; the test stops at the redirect.
// The port is below the kernel's ephemeral range, so that no test server started on
// port 0 (the issuer itself) can have it: a browser stopping at "the client's host"
// must never stop at ours.
const (
	flowRedirectHost = "127.0.0.1:9"
	flowRedirect     = "http://127.0.0.1/callback"
	flowRedirectUsed = "http://" + flowRedirectHost + "/callback"
	flowResource     = "https://mcp.example.com/mcp"
)

// flowEnv is one or more real Servers behind one issuer URL, with a fake OIDC upstream
// (upstreamtest). With several servers a round-robin front sends each request to the
// next one, as a load balancer over replicas would.
type flowEnv struct {
	issuer  string
	front   *httptest.Server
	idp     *upstreamtest.Server
	servers []*Server
	served  []atomic.Int64 // requests per server
}

// newFlowEnv starts one Server per store, issuing JWT access tokens. All share the
// master key and the signing keys, as replicas must; mods adjust every server's options.
func newFlowEnv(t *testing.T, stores []store.Store, useTLS bool, mods ...func(*Options)) *flowEnv {
	t.Helper()
	return newFlowEnvWith(t, stores, useTLS, config.AccessTokenJWT, mods...)
}

// newFlowEnvWith is newFlowEnv issuing access tokens in format.
func newFlowEnvWith(t *testing.T, stores []store.Store, useTLS bool, format config.AccessTokenFormat, mods ...func(*Options)) *flowEnv {
	t.Helper()
	keys, err := GenerateSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	fe := &flowEnv{served: make([]atomic.Int64, len(stores))}
	var next atomic.Int64
	fe.front = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(next.Add(1)-1) % len(fe.servers)
		fe.served[i].Add(1)
		fe.servers[i].Handler().ServeHTTP(w, r)
	}))
	if useTLS {
		fe.front.StartTLS()
	} else {
		fe.front.Start()
	}
	t.Cleanup(fe.front.Close)
	fe.issuer = fe.front.URL
	fe.idp = upstreamtest.NewServer(t, upstreamtest.Options{
		User:           &upstreamtest.User{Subject: "alice", Email: "alice@example.com"},
		RequirePKCE:    true,
		AccessTokenTTL: 10 * time.Second, // inside the refresh skew: introspection refreshes it
	})
	reg, err := NewStaticClients(resourceServer)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stores {
		prov, err := upstream.New(t.Context(), fe.idp.OIDCConfig(fe.issuer+DefaultCallbackPath))
		if err != nil {
			t.Fatalf("upstream: %v", err)
		}
		opts := Options{
			Issuer: fe.issuer, ScopesSupported: []string{"read", "write"}, DefaultScopes: []string{"read"},
			DynamicRegistration: true, Store: st, Upstream: prov, MasterKey: testKey, Clients: reg,
			AccessTokenFormat: format, SigningKeys: keys,
		}
		for _, m := range mods {
			m(&opts)
		}
		srv, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		fe.servers = append(fe.servers, srv)
	}
	return fe
}

// httpClient trusts the front's certificate and reaches the (plain http) IdP too.
func (fe *flowEnv) httpClient() *http.Client { return fe.front.Client() }

// flowSecrets is every secret a flow handed out, to look for in the store afterwards.
type flowSecrets []string

// runFlow is the MCP client's whole life with golang.org/x/oauth2: discover, register,
// authorize with PKCE (consent approved in a cookie-keeping browser), exchange,
// introspect, refresh, revoke, introspect again.
func runFlow(t *testing.T, fe *flowEnv) flowSecrets {
	t.Helper()
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, fe.httpClient())
	meta := fe.discover(t)
	reg := fe.registerClient(t, meta)
	cfg := &oauth2.Config{
		ClientID:    reg.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: flowRedirectUsed,
		Scopes:      []string{"read", "write"},
	}
	verifier := oauth2.GenerateVerifier()
	state := randomString(16)
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", flowResource))

	back := fe.browse(t, authURL)
	q := back.Query()
	if q.Get("state") != state || q.Get("iss") != fe.issuer || q.Get("code") == "" {
		t.Fatalf("client redirect %s: want code, state %q and iss %q", back, state, fe.issuer)
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", flowResource))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Extra("scope") != "read write" {
		t.Fatalf("token %+v scope %v", tok, tok.Extra("scope"))
	}

	if looksLikeJWT(tok.AccessToken) {
		// A resource server verifies it on its own, with another JOSE library.
		claims := verifyIndependently(t, fe.httpClient(), meta.JWKSURI, tok.AccessToken)
		if claims["iss"] != fe.issuer || claims["sub"] != "alice" || claims["aud"] != flowResource ||
			claims["client_id"] != reg.ClientID || claims["scope"] != "read write" {
			t.Fatalf("JWT claims %v", claims)
		}
	}
	info := fe.introspect(t, meta, tok.AccessToken)
	if info.Active != true || info.Subject != "alice" || info.ClientID != reg.ClientID ||
		strings.Join(info.Audience, " ") != flowResource || info.Issuer != fe.issuer {
		t.Fatalf("introspection %+v", info)
	}
	upstreamToken := info.UpstreamAccessToken
	if !fe.idp.ValidAccessToken(upstreamToken) {
		t.Fatalf("upstream token %q is not valid at the upstream", upstreamToken)
	}
	if fe.idp.Refreshes() == 0 {
		t.Error("an upstream token about to expire was not refreshed before introspection returned it")
	}

	next, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if next.AccessToken == tok.AccessToken || next.RefreshToken == tok.RefreshToken || next.RefreshToken == "" {
		t.Fatalf("refresh did not rotate: %+v", next)
	}
	again := fe.introspect(t, meta, next.AccessToken)
	if !again.Active || !fe.idp.ValidAccessToken(again.UpstreamAccessToken) {
		t.Fatalf("introspection after refresh %+v", again)
	}

	fe.revoke(t, meta, reg.ClientID, next.RefreshToken)
	for name, tk := range map[string]string{"access": next.AccessToken, "refresh": next.RefreshToken} {
		if fe.introspect(t, meta, tk).Active {
			t.Errorf("%s token active after revocation", name)
		}
	}
	// The revocation reaches resource servers that verify JWTs on their own.
	grantID, _ := parseToken(prefixRefresh, next.RefreshToken)
	if feed := fe.revocations(t, ""); !slices.ContainsFunc(feed.Revocations, func(e revocationEntry) bool { return e.GrantID == grantID }) {
		t.Errorf("the revoked grant is not in the revocation feed %+v", feed)
	}
	return flowSecrets{q.Get("code"), tok.AccessToken, tok.RefreshToken, next.AccessToken, next.RefreshToken,
		upstreamToken, again.UpstreamAccessToken, verifier}
}

func (fe *flowEnv) discover(t *testing.T) Metadata {
	t.Helper()
	resp, err := fe.httpClient().Get(fe.issuer + wellKnownAS)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m Metadata
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || m.Issuer != fe.issuer {
		t.Fatalf("metadata %+v, %v", m, err)
	}
	return m
}

func (fe *flowEnv) registerClient(t *testing.T, m Metadata) registration {
	t.Helper()
	body := `{"client_name":"Flow Client","application_type":"native","redirect_uris":["` + flowRedirect + `"],
		"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`
	resp, err := fe.httpClient().Post(m.RegistrationEndpoint, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r registration
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %d %+v %v", resp.StatusCode, r, err)
	}
	return r
}

// browse plays the user's browser from the authorization URL to the client's redirect
// URI: it keeps cookies, approves the consent page, and follows every redirect through
// the upstream and back.
func (fe *flowEnv) browse(t *testing.T, authURL string) *url.URL {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := *fe.httpClient()
	c.Jar = jar
	var back *url.URL
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == flowRedirectHost {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: %d %s", resp.StatusCode, page)
	}
	form := consentForm(t, page)
	form.Set("decision", "approve")
	resp, err = c.PostForm(fe.issuer+pathConsent, form)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); back == nil {
		t.Fatalf("consent ended at %s %d, not at the client: %s", resp.Request.URL, resp.StatusCode, body)
	}
	return back
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (fe *flowEnv) introspect(t *testing.T, m Metadata, tok string) IntrospectionResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, m.IntrospectionEndpoint, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(resourceServer.ID, resourceServer.Secret)
	resp, err := fe.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out IntrospectionResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: %d %v", resp.StatusCode, err)
	}
	return out
}

func (fe *flowEnv) revoke(t *testing.T, m Metadata, clientID, tok string) {
	t.Helper()
	resp, err := fe.httpClient().PostForm(m.RevocationEndpoint, url.Values{"token": {tok}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
}

// revocations reads the revocation feed as the resource server.
func (fe *flowEnv) revocations(t *testing.T, since string) revocationsResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fe.issuer+pathRevocations+"?"+url.Values{"since": {since}}.Encode(), nil)
	req.SetBasicAuth(resourceServer.ID, resourceServer.Secret)
	resp, err := fe.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out revocationsResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revocations: %d %v", resp.StatusCode, err)
	}
	return out
}

var tokenFormats = []config.AccessTokenFormat{config.AccessTokenJWT, config.AccessTokenOpaque}

func TestWholeFlowOnMemory(t *testing.T) {
	for _, format := range tokenFormats {
		for _, useTLS := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/https=%v", format, useTLS), func(t *testing.T) {
				testWholeFlowOnMemory(t, format, useTLS)
			})
		}
	}
}

func testWholeFlowOnMemory(t *testing.T, format config.AccessTokenFormat, useTLS bool) {
	mem := memory.New(memory.Options{Prefix: "flow"})
	t.Cleanup(func() { _ = mem.Close() })
	rec := &testStore{Store: mem}
	fe := newFlowEnvWith(t, []store.Store{rec}, useTLS, format)
	secrets := runFlow(t, fe)
	seen := rec.recorded()
	for _, s := range secrets {
		if strings.Contains(seen, s) {
			t.Errorf("secret %.10s... reached the store in clear", s)
		}
	}
}

// startRedisStores starts one redis-server and returns n stores on it (separate
// clients, one tenant), plus a raw client to inspect what was written.
func startRedisStores(t *testing.T, n int) ([]store.Store, goredis.UniversalClient) {
	t.Helper()
	srv := redisserver.Start(t)
	var stores []store.Store
	for range n {
		st, err := redisstore.New(t.Context(), redisstore.Options{Addrs: []string{srv.Addr}, Prefix: "flowtest"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		stores = append(stores, st)
	}
	raw := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = raw.Close() })
	return stores, raw
}

// dumpRedis returns every key and value in Redis as text.
func dumpRedis(t *testing.T, rdb goredis.UniversalClient) string {
	t.Helper()
	ctx := t.Context()
	var b strings.Builder
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("redis is empty: the flow did not use it")
	}
	for _, k := range keys {
		fmt.Fprintln(&b, k)
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			fmt.Fprintln(&b, rdb.Get(ctx, k).Val())
		case "hash":
			fmt.Fprintln(&b, rdb.HGetAll(ctx, k).Val())
		case "set":
			fmt.Fprintln(&b, rdb.SMembers(ctx, k).Val())
		case "zset":
			fmt.Fprintln(&b, rdb.ZRange(ctx, k, 0, -1).Val())
		case "list":
			fmt.Fprintln(&b, rdb.LRange(ctx, k, 0, -1).Val())
		default:
			t.Fatalf("key %s has unexpected type %s", k, typ)
		}
	}
	return b.String()
}

func TestWholeFlowOnRedis(t *testing.T) {
	for _, format := range tokenFormats {
		t.Run(string(format), func(t *testing.T) { testWholeFlowOnRedis(t, format) })
	}
}

func testWholeFlowOnRedis(t *testing.T, format config.AccessTokenFormat) {
	stores, raw := startRedisStores(t, 1)
	fe := newFlowEnvWith(t, stores, true, format)
	secrets := runFlow(t, fe)
	dump := dumpRedis(t, raw)
	for _, s := range secrets {
		if strings.Contains(dump, s) {
			t.Errorf("secret %.10s... is in Redis in clear", s)
		}
	}
	if !strings.Contains(dump, "flowtest") {
		t.Error("keys lack the tenant prefix")
	}
}

// TestWholeFlowAcrossTwoServersSharingRedis sends each request to the other server
// than the one before: authorize on one, consent on the other (its CSRF token and the
// pending authorization made by the first), the callback back on the first, the code
// redeemed on the second, and so on. It passes only if no flow state is in process
// memory.
func TestWholeFlowAcrossTwoServersSharingRedis(t *testing.T) {
	for _, format := range tokenFormats {
		t.Run(string(format), func(t *testing.T) { testWholeFlowAcrossTwoServers(t, format) })
	}
}

func testWholeFlowAcrossTwoServers(t *testing.T, format config.AccessTokenFormat) {
	stores, _ := startRedisStores(t, 2)
	fe := newFlowEnvWith(t, stores, true, format)
	runFlow(t, fe)
	a, b := fe.served[0].Load(), fe.served[1].Load()
	if a < 5 || b < 5 || a-b > 1 || b-a > 1 {
		t.Fatalf("requests per server: %d and %d; the steps did not alternate", a, b)
	}
}

// TestConcurrentRefreshesOfOneTokenRevokeTheGrant races two replicas over one refresh
// token: the store's atomic rotation lets exactly one win, and the loser's reuse
// revokes the grant (OAuth 2.1 §4.3.1).
func TestConcurrentRefreshesOfOneTokenRevokeTheGrant(t *testing.T) {
	stores, _ := startRedisStores(t, 2)
	fe := newFlowEnv(t, stores, true)
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, fe.httpClient())
	meta := fe.discover(t)
	reg := fe.registerClient(t, meta)
	cfg := &oauth2.Config{ClientID: reg.ClientID, RedirectURL: flowRedirectUsed,
		Endpoint: oauth2.Endpoint{AuthURL: meta.AuthorizationEndpoint, TokenURL: meta.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	back := fe.browse(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	tok, err := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]*oauth2.Token, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			results[i], errs[i] = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
		})
	}
	wg.Wait()
	ok := 0
	for i := range 2 {
		if errs[i] == nil {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 2 concurrent refreshes succeeded (%v, %v); rotation must let exactly one win", ok, errs[0], errs[1])
	}
	for i := range 2 {
		if results[i] != nil && fe.introspect(t, meta, results[i].AccessToken).Active {
			t.Error("the winner's token survived the loser's reuse")
		}
	}
}

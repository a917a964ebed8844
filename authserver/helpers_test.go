package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/memory"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// testIssuer is the issuer of handler tests, which call the handler directly.
const testIssuer = "https://as.example.com"

// Redirect URIs registered for the static test clients.
const (
	webRedirect      = "https://app.example.com/cb"
	loopbackRedirect = "http://127.0.0.1/cb"
	nativeRedirect   = "com.example.app:/cb"
)

// Static test clients.
var (
	publicClient  = StaticClient{ID: "public-app", Name: "Public App", RedirectURIs: []string{webRedirect, loopbackRedirect, nativeRedirect}}
	trustedClient = StaticClient{ID: "trusted-app", Name: "Trusted App", RedirectURIs: []string{webRedirect, loopbackRedirect}, Trusted: true}
	confClient    = StaticClient{ID: "conf-app", Name: "Confidential App", Secret: "conf-secret", RedirectURIs: []string{webRedirect}, Trusted: true}
	postClient    = StaticClient{ID: "post-app", Secret: "post-secret", TokenEndpointAuthMethod: AuthMethodPost, RedirectURIs: []string{webRedirect}, Trusted: true}
	noRefresh     = StaticClient{ID: "no-refresh-app", RedirectURIs: []string{webRedirect}, GrantTypes: []string{grantAuthCode}, Trusted: true}
	scopedClient  = StaticClient{ID: "scoped-app", RedirectURIs: []string{webRedirect}, Scopes: []string{"read"}, Trusted: true}
	// resourceServer introspects and may see upstream tokens; plainRS may not.
	resourceServer = StaticClient{ID: "mcp-server", Secret: "rs-secret", RedirectURIs: []string{webRedirect}, IntrospectUpstream: true}
	plainRS        = StaticClient{ID: "other-server", Secret: "other-secret", RedirectURIs: []string{webRedirect}}
)

// testKey is the master key of every test server.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// clock is a settable clock shared by the server and the memory store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeUpstream is an in-process upstream.Provider for handler tests: no network. The
// upstream code "good-code" logs in user "user-1".
type fakeUpstream struct {
	mu          sync.Mutex
	token       upstream.Token
	subject     string
	exchangeErr error
	refreshErr  error
	refreshTok  upstream.Token
	refreshes   int
	lastParams  upstream.AuthParams
	// scopes are the provider's default scopes (upstream.Scoper).
	scopes []string
	// refreshGate, when set, holds every Refresh (after counting it) until closed.
	refreshGate chan struct{}
}

func (f *fakeUpstream) Scopes() []string { return f.scopes }

const goodUpstreamCode = "good-code"

func newFakeUpstream(now time.Time) *fakeUpstream {
	return &fakeUpstream{
		token:      upstream.Token{AccessToken: "upstream-access-1", RefreshToken: "upstream-refresh-1", TokenType: "Bearer", Expiry: now.Add(time.Hour)},
		subject:    "user-1",
		refreshTok: upstream.Token{AccessToken: "upstream-access-2", TokenType: "Bearer", Expiry: now.Add(2 * time.Hour)},
	}
}

func (f *fakeUpstream) Name() string { return "fakeidp" }

func (f *fakeUpstream) AuthCodeURL(state string, p upstream.AuthParams) string {
	f.mu.Lock()
	f.lastParams = p
	f.mu.Unlock()
	return "https://idp.example.com/authorize?state=" + url.QueryEscape(state)
}

func (f *fakeUpstream) Exchange(_ context.Context, code string, p upstream.AuthParams) (*upstream.Token, *upstream.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exchangeErr != nil {
		return nil, nil, f.exchangeErr
	}
	if code != goodUpstreamCode || p.Verifier != f.lastParams.Verifier || p.Nonce != f.lastParams.Nonce {
		return nil, nil, upstream.ErrExchange
	}
	tok := f.token
	return &tok, &upstream.Identity{Subject: f.subject}, nil
}

func (f *fakeUpstream) Refresh(_ context.Context, refreshToken string) (*upstream.Token, error) {
	f.mu.Lock()
	f.refreshes++
	gate := f.refreshGate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refreshErr != nil {
		return nil, f.refreshErr
	}
	if refreshToken != f.token.RefreshToken {
		return nil, upstream.ErrNoRefresh
	}
	tok := f.refreshTok
	return &tok, nil
}

func (f *fakeUpstream) SupportsPKCE() bool { return true }

// testStore wraps a store to record every argument passed to it (to prove no secret is
// stored in clear), to fail every call as an outage, or to panic in one operation.
type testStore struct {
	store.Store
	down    atomic.Bool
	failOn  atomic.Value // string: the one operation that fails as an outage
	panicOn atomic.Value // string
	mu      sync.Mutex
	seen    []string
}

func (s *testStore) before(op string, args ...any) error {
	s.mu.Lock()
	for _, a := range args {
		s.seen = append(s.seen, fmt.Sprintf("%s %+v", op, a))
		if t, ok := a.(store.UpstreamToken); ok {
			s.seen = append(s.seen, string(t.Ciphertext))
		}
		if t, ok := a.(store.Successor); ok {
			s.seen = append(s.seen, string(t.Sealed))
		}
	}
	s.mu.Unlock()
	if p, _ := s.panicOn.Load().(string); p == op {
		panic("injected panic in " + op)
	}
	if f, _ := s.failOn.Load().(string); s.down.Load() || f == op {
		return fmt.Errorf("%w: injected outage", store.ErrUnavailable)
	}
	return nil
}

// recorded returns everything the store was given, as text.
func (s *testStore) recorded() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.seen, "\n")
}

func (s *testStore) CreateClient(ctx context.Context, c store.Client) error {
	if err := s.before("CreateClient", c); err != nil {
		return err
	}
	return s.Store.CreateClient(ctx, c)
}

func (s *testStore) CreateClientLimited(ctx context.Context, c store.Client, limit int) error {
	if err := s.before("CreateClient", c); err != nil {
		return err
	}
	return s.Store.CreateClientLimited(ctx, c, limit)
}

func (s *testStore) UpdateClient(ctx context.Context, c store.Client) error {
	if err := s.before("UpdateClient", c); err != nil {
		return err
	}
	return s.Store.UpdateClient(ctx, c)
}

func (s *testStore) DeleteClient(ctx context.Context, id string) error {
	if err := s.before("DeleteClient", id); err != nil {
		return err
	}
	return s.Store.DeleteClient(ctx, id)
}

func (s *testStore) TouchClient(ctx context.Context, u store.ClientUse) error {
	if err := s.before("TouchClient", u); err != nil {
		return err
	}
	return s.Store.TouchClient(ctx, u)
}

func (s *testStore) ListClients(ctx context.Context) ([]store.Client, error) {
	if err := s.before("ListClients"); err != nil {
		return nil, err
	}
	return s.Store.ListClients(ctx)
}

func (s *testStore) CountClients(ctx context.Context) (int, error) {
	if err := s.before("CountClients"); err != nil {
		return 0, err
	}
	return s.Store.CountClients(ctx)
}

func (s *testStore) GetClient(ctx context.Context, id string) (store.Client, error) {
	if err := s.before("GetClient", id); err != nil {
		return store.Client{}, err
	}
	return s.Store.GetClient(ctx, id)
}

func (s *testStore) SavePending(ctx context.Context, h string, p store.PendingAuthorization) error {
	if err := s.before("SavePending", h, p); err != nil {
		return err
	}
	return s.Store.SavePending(ctx, h, p)
}

func (s *testStore) TakePending(ctx context.Context, h string) (store.PendingAuthorization, error) {
	if err := s.before("TakePending", h); err != nil {
		return store.PendingAuthorization{}, err
	}
	return s.Store.TakePending(ctx, h)
}

func (s *testStore) SaveCode(ctx context.Context, g, h string, c store.AuthorizationCode) error {
	if err := s.before("SaveCode", g, h, c); err != nil {
		return err
	}
	return s.Store.SaveCode(ctx, g, h, c)
}

func (s *testStore) PeekCode(ctx context.Context, g, h string) (store.AuthorizationCode, error) {
	if err := s.before("PeekCode", g, h); err != nil {
		return store.AuthorizationCode{}, err
	}
	return s.Store.PeekCode(ctx, g, h)
}

func (s *testStore) RedeemCode(ctx context.Context, g, h string, gr store.Grant, t store.TokenPair) error {
	if err := s.before("RedeemCode", g, h, gr, t); err != nil {
		return err
	}
	return s.Store.RedeemCode(ctx, g, h, gr, t)
}

func (s *testStore) GetAccessToken(ctx context.Context, g, h string) (store.Token, error) {
	if err := s.before("GetAccessToken", g, h); err != nil {
		return store.Token{}, err
	}
	return s.Store.GetAccessToken(ctx, g, h)
}

func (s *testStore) GetRefreshToken(ctx context.Context, g, h string) (store.Token, error) {
	if err := s.before("GetRefreshToken", g, h); err != nil {
		return store.Token{}, err
	}
	return s.Store.GetRefreshToken(ctx, g, h)
}

func (s *testStore) RotateRefreshToken(ctx context.Context, g, h string, next store.TokenPair, succ store.Successor) ([]byte, error) {
	if err := s.before("RotateRefreshToken", g, h, next, succ); err != nil {
		return nil, err
	}
	return s.Store.RotateRefreshToken(ctx, g, h, next, succ)
}

func (s *testStore) RevokeGrant(ctx context.Context, g string) error {
	if err := s.before("RevokeGrant", g); err != nil {
		return err
	}
	return s.Store.RevokeGrant(ctx, g)
}

func (s *testStore) ListGrants(ctx context.Context, f store.GrantFilter) ([]store.Grant, error) {
	if err := s.before("ListGrants", f); err != nil {
		return nil, err
	}
	return s.Store.ListGrants(ctx, f)
}

func (s *testStore) RevokeAccessToken(ctx context.Context, g, h string) error {
	if err := s.before("RevokeAccessToken", g, h); err != nil {
		return err
	}
	return s.Store.RevokeAccessToken(ctx, g, h)
}

func (s *testStore) PutUpstreamToken(ctx context.Context, u string, t store.UpstreamToken, ttl time.Duration) error {
	if err := s.before("PutUpstreamToken", u, t); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil { // as the Redis store fails a canceled request
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return s.Store.PutUpstreamToken(ctx, u, t, ttl)
}

func (s *testStore) GetUpstreamToken(ctx context.Context, u string) (store.UpstreamToken, error) {
	if err := s.before("GetUpstreamToken", u); err != nil {
		return store.UpstreamToken{}, err
	}
	return s.Store.GetUpstreamToken(ctx, u)
}

func (s *testStore) DeleteUpstreamToken(ctx context.Context, u string) error {
	if err := s.before("DeleteUpstreamToken", u); err != nil {
		return err
	}
	return s.Store.DeleteUpstreamToken(ctx, u)
}

func (s *testStore) AcquireLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	if err := s.before("AcquireLease", name); err != nil {
		return false, err
	}
	return s.Store.AcquireLease(ctx, name, ttl)
}

func (s *testStore) ReleaseLease(ctx context.Context, name string) error {
	if err := s.before("ReleaseLease", name); err != nil {
		return err
	}
	return s.Store.ReleaseLease(ctx, name)
}

func (s *testStore) Revocations(ctx context.Context, since time.Time) ([]store.Revocation, error) {
	if err := s.before("Revocations", since); err != nil {
		return nil, err
	}
	return s.Store.Revocations(ctx, since)
}

func (s *testStore) RevokeTokenID(ctx context.Context, g, jti string, until time.Time) error {
	if err := s.before("RevokeTokenID", g, jti, until); err != nil {
		return err
	}
	return s.Store.RevokeTokenID(ctx, g, jti, until)
}

func (s *testStore) TokenIDRevoked(ctx context.Context, g, jti string) (bool, error) {
	if err := s.before("TokenIDRevoked", g, jti); err != nil {
		return false, err
	}
	return s.Store.TokenIDRevoked(ctx, g, jti)
}

func (s *testStore) Ping(ctx context.Context) error {
	if err := s.before("Ping"); err != nil {
		return err
	}
	return s.Store.Ping(ctx)
}

// env is a Server under test, called in process (no listener), with a fake upstream.
type env struct {
	t     *testing.T
	srv   *Server
	clock *clock
	store *testStore
	up    *fakeUpstream
}

// newEnv builds a test server; mods adjust the options before New.
func newEnv(t *testing.T, mods ...func(*Options)) *env {
	t.Helper()
	clk := newClock()
	mem := memory.New(memory.Options{Prefix: "test", Now: clk.Now, JanitorInterval: -1})
	t.Cleanup(func() { _ = mem.Close() })
	ts := &testStore{Store: mem}
	reg, err := NewStaticClients(publicClient, trustedClient, confClient, postClient, noRefresh, scopedClient, resourceServer, plainRS)
	if err != nil {
		t.Fatal(err)
	}
	up := newFakeUpstream(clk.Now())
	opts := Options{
		Issuer:              testIssuer,
		DisplayName:         "Test Login",
		ScopesSupported:     []string{"read", "write", "offline_access"},
		DefaultScopes:       []string{"read"},
		DynamicRegistration: true,
		Store:               ts,
		Upstream:            up,
		MasterKey:           testKey,
		Clients:             reg,
		Now:                 clk.Now,
	}
	for _, m := range mods {
		m(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &env{t: t, srv: srv, clock: clk, store: ts, up: up}
}

// serve runs one request through the handler.
func (e *env) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return rec
}

// postForm sends a form POST; basic sets HTTP Basic credentials when non-empty.
func (e *env) postForm(path string, form url.Values, basic ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, testIssuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	return e.serve(req)
}

func (e *env) get(path string) *httptest.ResponseRecorder {
	return e.serve(httptest.NewRequest(http.MethodGet, testIssuer+path, nil))
}

// browser carries cookies across requests like a user agent.
type browser struct {
	e   *env
	jar *cookiejar.Jar
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, jar: jar}
}

func (b *browser) do(req *http.Request) *httptest.ResponseRecorder {
	for _, c := range b.jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	rec := b.e.serve(req)
	b.jar.SetCookies(req.URL, rec.Result().Cookies())
	return rec
}

func (b *browser) get(rawURL string) *httptest.ResponseRecorder {
	return b.do(httptest.NewRequest(http.MethodGet, rawURL, nil))
}

func (b *browser) postForm(rawURL string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// pkce is a verifier and its S256 challenge.
type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := randomString(32)
	sum := sha256.Sum256([]byte(v))
	return pkce{verifier: v, challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// authzQuery is a valid authorization request for a client.
func authzQuery(clientID, redirectURI string, p pkce) url.Values {
	return url.Values{
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"response_type":         {"code"},
		"state":                 {"client-state-123"},
		"code_challenge":        {p.challenge},
		"code_challenge_method": {"S256"},
	}
}

func authorizeURL(q url.Values) string { return testIssuer + pathAuthorize + "?" + q.Encode() }

// location returns the redirect target of a response, failing unless it is a 302.
func location(t *testing.T, rec *httptest.ResponseRecorder) *url.URL {
	t.Helper()
	if rec.Code != http.StatusFound {
		t.Fatalf("status %d, want 302; body: %s", rec.Code, rec.Body.String())
	}
	u, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// consentForm extracts the hidden fields of a consent page.
func consentForm(t *testing.T, body string) url.Values {
	t.Helper()
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(body, -1) {
		form.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	if form.Get("csrf_token") == "" {
		t.Fatalf("no consent form in page:\n%s", body)
	}
	return form
}

// login runs the browser part of a flow: authorize (approving consent if asked), the
// upstream round trip, and the callback. It returns where the client was sent.
func (b *browser) login(t *testing.T, q url.Values) *url.URL {
	t.Helper()
	rec := b.get(authorizeURL(q))
	if rec.Code == http.StatusOK {
		form := consentForm(t, rec.Body.String())
		form.Set("decision", "approve")
		rec = b.postForm(testIssuer+pathConsent, form)
	}
	up := location(t, rec)
	if up.Host != "idp.example.com" {
		t.Fatalf("authorize redirected to %s, want the upstream", up)
	}
	cb := url.Values{"code": {goodUpstreamCode}, "state": {up.Query().Get("state")}}
	return location(t, b.get(testIssuer+DefaultCallbackPath+"?"+cb.Encode()))
}

// code runs a whole browser flow for a client and returns our authorization code.
func (e *env) code(clientID, redirectURI string, p pkce, extra url.Values) string {
	e.t.Helper()
	q := authzQuery(clientID, redirectURI, p)
	for k, v := range extra {
		q[k] = v
	}
	back := e.browser().login(e.t, q)
	code := back.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in redirect %s", back)
	}
	return code
}

// tokens is a token endpoint answer.
type tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// exchange redeems a code for a public client and fails the test unless it works.
func (e *env) exchange(clientID, redirectURI, code string, p pkce, basic ...string) tokens {
	e.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {p.verifier}}
	if len(basic) == 0 {
		form.Set("client_id", clientID)
	}
	rec := e.postForm(pathToken, form, basic...)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("token: %d %s", rec.Code, rec.Body.String())
	}
	var tok tokens
	decodeJSON(e.t, rec.Body, &tok)
	return tok
}

// issue runs a flow for the trusted public client and returns its tokens.
func (e *env) issue() tokens {
	e.t.Helper()
	p := newPKCE()
	code := e.code(trustedClient.ID, webRedirect, p, nil)
	return e.exchange(trustedClient.ID, webRedirect, code, p)
}

// introspect asks as the resource server and returns the decoded answer.
func (e *env) introspect(tok string) map[string]any {
	e.t.Helper()
	rec := e.postForm(pathIntrospect, url.Values{"token": {tok}}, resourceServer.ID, resourceServer.Secret)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("introspect: %d %s", rec.Code, rec.Body.String())
	}
	var out map[string]any
	decodeJSON(e.t, rec.Body, &out)
	return out
}

func decodeJSON(t *testing.T, r io.Reader, v any) {
	t.Helper()
	if err := json.NewDecoder(r).Decode(v); err != nil {
		t.Fatalf("decode JSON: %v", err)
	}
}

// oauthErr decodes an RFC 6749 error body and checks status and code.
func wantOAuthError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body: %s", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var body struct {
		Error string `json:"error"`
	}
	decodeJSON(t, rec.Body, &body)
	if body.Error != code {
		t.Fatalf("error %q, want %q", body.Error, code)
	}
}

// postJSON sends a JSON POST (the registration endpoint).
func (e *env) postJSON(path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, testIssuer+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return e.serve(req)
}

// jsonField returns a string field of a JSON response.
func jsonField(t *testing.T, rec *httptest.ResponseRecorder, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("decode %s: %v", rec.Body.String(), err)
	}
	s, _ := m[name].(string)
	if s == "" {
		t.Fatalf("no %s in %s", name, rec.Body.String())
	}
	return s
}

// httpRecorder serves one GET through h.
func httpRecorder(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, testIssuer+path, nil))
	return rec
}

// accessGrantID returns the grant ID an access token names, in either format: the
// opaque token carries it in clear, a JWT in its gid claim (read here without
// verifying, as a test that already trusts the token may).
func accessGrantID(t *testing.T, tok string) string {
	t.Helper()
	if id, ok := parseToken(prefixAccess, tok); ok {
		return id
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %.12s... is neither opaque nor a JWT", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		GrantID string `json:"gid"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.GrantID == "" {
		t.Fatalf("JWT payload %s has no gid (%v)", payload, err)
	}
	return claims.GrantID
}

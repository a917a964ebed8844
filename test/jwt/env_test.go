package jwt

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/authserver/app"
	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/resource"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
	"github.com/mcpauth/mcpauth/internal/testutil/signingkeys"
)

// Who logs in, and the clients of the test's server.
const (
	userID = "alice-42"
	// agentID is the MCP client: public, pre-registered, trusted (no consent page:
	// these tests are about tokens, not the consent screen).
	agentID = "agent"
	// toolsID is the MCP servers' confidential client: it reads the revocation feed
	// and introspects, as a real MCP server is told to.
	toolsID = "tools"
	// clientRedirect is where the test's browser stops; nothing listens there.
	clientRedirect = "http://127.0.0.1:38999/callback"
	// otherResource is an MCP server that is not one of the test's.
	otherResource = "https://other.example.com/mcp"
)

// env is a running authorization server on Redis, its upstream IdP, and two MCP
// servers that verify its JWTs.
type env struct {
	issuer      string
	idp         *upstreamtest.Server
	keysPath    string
	adminPath   string
	adminToken  string
	toolsSecret string
	// yaml and getenv are the config file and environment every replica starts from.
	yaml   string
	getenv func(string) string
	// port is the issuer's; stopFirst stops the replica listening there.
	port      int
	stopFirst func()

	// middleware is an MCP server behind resource.Verifier.Middleware; sdk one behind
	// the Go MCP SDK's auth.RequireBearerToken with resource.Verifier.TokenVerifier.
	middleware, sdk *front
}

// keysPoll is how often the app re-reads the signing keys file (2 s in production):
// short, so rotations in the tests take effect quickly.
const keysPoll = 100 * time.Millisecond

// newEnv starts everything. keys are the first content of the signing keys file
// (default: one ES256 key, k1, active since a minute ago).
func newEnv(t *testing.T, keys ...config.SigningKey) *env {
	t.Helper()
	dir := t.TempDir()
	rdb := redisserver.Start(t)
	port := freePort(t)
	e := &env{
		issuer:      fmt.Sprintf("http://127.0.0.1:%d", port),
		keysPath:    filepath.Join(dir, "signing-keys.json"),
		adminPath:   filepath.Join(dir, "admin-token"),
		adminToken:  rand.Text() + rand.Text(),
		toolsSecret: rand.Text() + rand.Text(),
	}
	e.idp = upstreamtest.NewServer(t, upstreamtest.Options{
		User:         &upstreamtest.User{Subject: userID, Email: "alice@example.com", Name: "Alice"},
		RedirectURIs: []string{e.issuer + "/oauth/callback"},
	})
	if len(keys) == 0 {
		keys = []config.SigningKey{newKey(t, "k1", time.Now().Add(-time.Minute), time.Time{})}
	}
	e.writeKeys(t, keys...)
	encKey := make([]byte, 32)
	_, _ = rand.Read(encKey)
	for path, content := range map[string]string{
		filepath.Join(dir, "encryption-key"): base64.StdEncoding.EncodeToString(encKey),
		e.adminPath:                          e.adminToken,
		filepath.Join(dir, "tools-secret"):   e.toolsSecret,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yaml := fmt.Sprintf(`issuer: %[1]s
listenAddress: 127.0.0.1:%[2]d
upstream: {type: oidc, clientID: %[3]s, issuerURL: %[4]s}
store: {type: redis, redis: {url: "redis://%[5]s"}}
dynamicRegistration: {enabled: false}
secrets:
  encryptionKeyFile: %[6]s/encryption-key
  signingKeysFile: %[7]s
  adminTokenFile: %[8]s
clients:
- {clientID: %[9]s, redirectURIs: ["http://127.0.0.1/callback"], tokenEndpointAuthMethod: none, trusted: true}
- {clientID: %[10]s, secretFile: %[6]s/tools-secret, redirectURIs: ["http://127.0.0.1/callback"], tokenEndpointAuthMethod: client_secret_basic, introspectUpstream: true}
`, e.issuer, port, e.idp.ClientID, e.idp.Issuer, rdb.Addr, dir, e.keysPath, e.adminPath, agentID, toolsID)
	getenv := func(k string) string {
		if k == config.EnvUpstreamClientSecret {
			return e.idp.ClientSecret
		}
		return ""
	}
	e.yaml, e.getenv = yaml, getenv
	e.port = port
	_, e.stopFirst = e.startReplica(t, port)
	e.middleware = e.newFront(t, "middleware", false)
	e.sdk = e.newFront(t, "sdk", true)
	return e
}

// startReplica runs a replica of the authorization server from the same config file
// (the same Redis, keys and issuer) listening on port, and returns its address. The
// first replica listens on the issuer's port. stop ends the replica (gracefully, as
// on SIGTERM); the test's cleanup calls it too.
func (e *env) startReplica(t *testing.T, port int) (base string, stop func()) {
	t.Helper()
	cfg, err := config.Parse([]byte(e.yaml), e.getenv)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, e.yaml)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Getenv: e.getenv, Logger: slog.New(slog.DiscardHandler), ClientsFilePoll: keysPoll})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	addr, err := a.Listen(fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("authorization server: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	base = "http://" + addr
	waitUntil(t, 10*time.Second, "the authorization server at "+base+" is ready", func() bool {
		return status(base+config.PathReadyz) == http.StatusOK
	})
	return base, stop
}

// fronts are the two MCP servers.
func (e *env) fronts() []*front { return []*front{e.middleware, e.sdk} }

// newKey makes an ES256 key of the signing keys file.
func newKey(t *testing.T, kid string, activate, publishUntil time.Time) config.SigningKey {
	t.Helper()
	return newKeyOf(t, config.SigningES256, kid, activate, publishUntil)
}

// newKeyOf makes a key of alg (config.SigningES256 or config.SigningRS256).
func newKeyOf(t *testing.T, alg, kid string, activate, publishUntil time.Time) config.SigningKey {
	t.Helper()
	k, err := signingkeys.Generate(kid, alg, activate, publishUntil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// writeKeys rewrites the signing keys file, as the operator's Secret update reaches a
// pod: the whole file at once.
func (e *env) writeKeys(t *testing.T, keys ...config.SigningKey) {
	t.Helper()
	if err := signingkeys.WriteFile(e.keysPath, keys...); err != nil {
		t.Fatal(err)
	}
}

// front is an MCP server on the Go MCP SDK that verifies the test server's tokens.
type front struct {
	name     string
	url      string // its MCP endpoint, which is also its resource identifier
	verifier *resource.Verifier
	// calls counts the requests the verifier made to the authorization server, by path.
	calls *pathCounter
}

// newFront starts an MCP server whose tool whoami answers "<sub> <client_id> <gid>".
// With sdk it is protected by auth.RequireBearerToken (the SDK's TokenVerifier path),
// otherwise by the resource package's Middleware.
func (e *env) newFront(t *testing.T, name string, sdk bool, edits ...func(*resource.Config)) *front {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	f := &front{name: name, url: srv.URL + "/mcp", calls: &pathCounter{n: map[string]int{}}}
	var err error
	cfg := resource.Config{
		Resource:             f.url,
		AuthorizationServers: []string{e.issuer},
		ClientID:             toolsID,
		ClientSecret:         e.toolsSecret,
		RequiredScopes:       []string{"mcp"},
		HTTPClient:           &http.Client{Transport: f.calls},
		// The production JWKS refresh (5 min) and unknown-kid rate limit (10 s) are
		// compressed like the key schedule below, so a retired key leaves the
		// verifier within the test's patience. The revocation feed keeps its
		// defaults: its 5 s bound is what these tests measure.
		JWKSMaxAge:             time.Second,
		JWKSMinRefetchInterval: time.Second,
		Logger:                 slog.New(slog.DiscardHandler),
	}
	for _, edit := range edits {
		edit(&cfg)
	}
	f.verifier, err = resource.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.verifier.Close() })

	server := mcp.NewServer(&mcp.Implementation{Name: "jwt-e2e-" + name, Version: "1"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami"}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		info, ok := resource.FromTokenInfo(req.Extra.TokenInfo)
		if !ok {
			return nil, nil, fmt.Errorf("no verified token reached the tool")
		}
		text := info.Subject + " " + info.ClientID + " " + info.GrantID
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	})
	// upstream hands back the user's upstream access token, as a tool that calls
	// the upstream API on the user's behalf gets it.
	mcp.AddTool(server, &mcp.Tool{Name: "upstream"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		info, ok := resource.FromTokenInfo(req.Extra.TokenInfo)
		if !ok {
			return nil, nil, fmt.Errorf("no verified token reached the tool")
		}
		tok, _, err := f.verifier.UpstreamToken(ctx, info)
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: tok}}}, nil, nil
	})
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	mux := http.NewServeMux()
	f.verifier.MountMetadata(mux)
	if sdk {
		mux.Handle("/mcp", auth.RequireBearerToken(f.verifier.TokenVerifier(), &auth.RequireBearerTokenOptions{
			ResourceMetadataURL: f.verifier.MetadataURL(),
			Scopes:              f.verifier.RequiredScopes(),
		})(handler))
	} else {
		mux.Handle("/mcp", f.verifier.Middleware(handler))
	}
	h = mux
	return f
}

// pathCounter is an http.RoundTripper that counts requests by URL path, and keeps
// when each request to the revocation feed was sent and answered.
type pathCounter struct {
	mu    sync.Mutex
	n     map[string]int
	polls []span
}

// span is when a request was sent and when its answer's headers arrived.
type span struct{ sent, answered time.Time }

func (c *pathCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[r.URL.Path]++
	c.mu.Unlock()
	sent := time.Now()
	resp, err := http.DefaultTransport.RoundTrip(r)
	if r.URL.Path == config.PathRevocations && err == nil && resp.StatusCode == http.StatusOK {
		c.mu.Lock()
		c.polls = append(c.polls, span{sent, time.Now()})
		c.mu.Unlock()
	}
	return resp, err
}

func (c *pathCounter) get(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// firstPollAfter returns the first successful read of the revocation feed sent
// after t.
func (c *pathCounter) firstPollAfter(t time.Time) (span, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.polls {
		if p.sent.After(t) {
			return p, true
		}
	}
	return span{}, false
}

// initialize is an MCP initialize request, the first thing a client sends.
const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}`

// probe sends an MCP initialize with tok and returns the status and WWW-Authenticate.
func (f *front) probe(tok string) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, f.url, strings.NewReader(initialize))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

// whoami connects with the SDK's client and calls the whoami tool.
func (f *front) whoami(tok string) (string, error) { return f.call(tok, "whoami") }

// call connects with the SDK's client and calls a tool that answers with text.
func (f *front) call(tok, tool string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "jwt-e2e-client", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: f.url, HTTPClient: &http.Client{Transport: bearer(tok)},
	}, nil)
	if err != nil {
		return "", fmt.Errorf("%s: connect: %w", f.name, err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", f.name, tool, err)
	}
	if res.IsError || len(res.Content) != 1 {
		return "", fmt.Errorf("%s: %s failed: %+v", f.name, tool, res.Content)
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// tokens is a token endpoint answer.
type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// login runs the authorization-code flow with PKCE as the agent, for resources (RFC
// 8707), through the upstream IdP, with a browser that is an http.Client with a
// cookie jar following redirects.
func (e *env) login(t *testing.T, resources ...string) tokens {
	t.Helper()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {agentID}, "redirect_uri": {clientRedirect},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {"s1"}, "resource": resources,
	}
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), clientRedirect) {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := browser.Get(e.issuer + config.PathAuthorize + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if back == nil {
		t.Fatalf("the login ended at %s with %d: %.300s", resp.Request.URL, resp.StatusCode, body)
	}
	if back.Query().Get("iss") != e.issuer || back.Query().Get("state") != "s1" || back.Query().Get("code") == "" {
		t.Fatalf("bad authorization response %s", back)
	}
	return e.token(t, url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "client_id": {agentID},
		"redirect_uri": {clientRedirect}, "code_verifier": {verifier},
	})
}

// refresh rotates the agent's refresh token.
func (e *env) refresh(t *testing.T, refreshToken string) tokens {
	t.Helper()
	return e.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {agentID}})
}

func (e *env) token(t *testing.T, form url.Values) tokens {
	t.Helper()
	resp, err := http.PostForm(e.issuer+config.PathToken, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok tokens
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("token endpoint (%s): %d %v", form.Get("grant_type"), resp.StatusCode, err)
	}
	return tok
}

// revoke is the agent's RFC 7009 revocation of tok; it returns when the server has
// answered, which is when the revocation counts as done.
func (e *env) revoke(t *testing.T, tok, hint string) { t.Helper(); e.revokeAt(t, e.issuer, tok, hint) }

// revokeAt is revoke at the replica listening at base.
func (e *env) revokeAt(t *testing.T, base, tok, hint string) {
	t.Helper()
	resp, err := http.PostForm(base+config.PathRevoke, url.Values{"token": {tok}, "token_type_hint": {hint}, "client_id": {agentID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation: %d", resp.StatusCode)
	}
}

// introspections is how many introspection requests the server has answered, as its
// /metrics counts them.
func (e *env) introspections(t *testing.T) int {
	t.Helper()
	return e.metric(t, "mcpauth_http_requests_total{", `endpoint="introspect"`)
}

// introspect introspects tok as the MCP servers' client and reports "active".
func (e *env) introspect(t *testing.T, tok string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+config.PathIntrospect, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(toolsID, e.toolsSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("introspection: %d %v", resp.StatusCode, err)
	}
	return out.Active
}

// metric sums the samples of /metrics whose line starts with prefix and holds label
// (Prometheus writes labels in alphabetical order, so match them one by one).
func (e *env) metric(t *testing.T, prefix, label string) int {
	t.Helper()
	resp, err := http.Get(e.issuer + config.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, label) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += int(v)
	}
	return total
}

// kidOf returns the kid of a JWT's protected header.
func kidOf(t *testing.T, tok string) string {
	t.Helper()
	kid, _ := headerOf(t, tok)
	return kid
}

// headerOf returns the kid and alg of a JWT's protected header.
func headerOf(t *testing.T, tok string) (kid, alg string) {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	var header struct {
		Kid string `json:"kid"`
		Alg string `json:"alg"`
	}
	if err != nil || json.Unmarshal(raw, &header) != nil {
		t.Fatalf("not a JWT: header %q", h)
	}
	return header.Kid, header.Alg
}

// jwksKids returns the kids the server publishes.
func (e *env) jwksKids(t *testing.T) map[string]bool {
	t.Helper()
	resp, err := http.Get(e.issuer + config.PathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range set.Keys {
		out[k.Kid] = true
	}
	return out
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func status(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

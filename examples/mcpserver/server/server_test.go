package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/examples/mcpserver/server"
)

const (
	introspectionID     = "example-mcp"
	introspectionSecret = "introspection-secret"
	upstreamToken       = "gho_upstream-token-of-octocat"
)

// world is the example server with a fake authorization server and a fake upstream
// provider around it.
type world struct {
	mcpURL string // the MCP endpoint, also the resource identifier
	base   string

	issuer string
	signer jose.Signer

	mu             sync.Mutex
	userinfoAuth   []string                  // Authorization headers the upstream saw
	tokens         map[string]map[string]any // what introspection knows
	introspections int
}

// jwt mints a JWT access token for sub, known to introspection with extra.
func (w *world) jwt(t *testing.T, sub string, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": w.issuer, "sub": sub, "aud": w.mcpURL, "client_id": "some-mcp-client", "scope": "mcp",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "jti-" + sub, "gid": "grant-" + sub,
	})
	jws, err := w.signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jws.CompactSerialize()
	w.mu.Lock()
	w.tokens[tok] = extra
	w.mu.Unlock()
	return tok
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{}

	upstream := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		w.userinfoAuth = append(w.userinfoAuth, r.Header.Get("Authorization"))
		w.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+upstreamToken {
			http.Error(rw, "bad token", http.StatusUnauthorized)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, `{"login":"octocat","id":583231}`)
	}))
	t.Cleanup(upstream.Close)

	// The MCP server's URL is its resource identifier, which the fake authorization
	// server puts in the audience: start it first, configure it after.
	var h http.Handler
	mcpSrv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { h.ServeHTTP(rw, r) }))
	t.Cleanup(mcpSrv.Close)
	w.base, w.mcpURL = mcpSrv.URL, mcpSrv.URL+"/mcp"

	now := time.Now()
	tokens := map[string]map[string]any{
		"alice-token": {"sub": "alice", "upstream_access_token": upstreamToken},
		"bob-token":   {"sub": "bob", "upstream_access_token": upstreamToken},
		"no-upstream": {"sub": "carol"},
		"admin-token": {"sub": "alice", "scope": "mcp tools:admin", "upstream_access_token": upstreamToken},
	}
	// JWTs are signed with this key, published at the JWKS; the server introspects
	// them too (for the upstream token), so they join the token table once minted.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	w.tokens = tokens
	var issuer string
	as := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			rw.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(rw).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/oauth/jwks"})
			return
		case "/oauth/jwks":
			_ = json.NewEncoder(rw).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
			return
		}
		if id, secret, ok := r.BasicAuth(); !ok || id != introspectionID || secret != introspectionSecret {
			http.Error(rw, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/oauth/revocations" {
			rw.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(rw, `{"revocations":[],"cursor":"0","retention":960}`)
			return
		}
		answer := map[string]any{"active": false}
		w.mu.Lock()
		w.introspections++
		extra, ok := tokens[r.PostFormValue("token")]
		w.mu.Unlock()
		if ok {
			answer = map[string]any{
				"active": true, "token_type": "Bearer", "client_id": "some-mcp-client", "scope": "mcp",
				"aud": []string{w.mcpURL}, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
			}
			for k, v := range extra {
				answer[k] = v
			}
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(answer)
	}))
	t.Cleanup(as.Close)
	issuer, w.issuer = as.URL, as.URL

	h, err = server.New(server.Config{
		ResourceURL:           w.mcpURL,
		Issuer:                as.URL,
		IntrospectionEndpoint: as.URL + "/oauth/introspect",
		ClientID:              introspectionID,
		ClientSecret:          introspectionSecret,
		UpstreamUserinfoURL:   upstream.URL + "/user",
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	return w
}

// connect opens an MCP session with the Go SDK's client, sending token as a bearer.
func (w *world) connect(t *testing.T, token string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   w.mcpURL,
		HTTPClient: &http.Client{Transport: bearer{token: token, base: http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// bearer adds an Authorization header to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func callTool(t *testing.T, cs *mcp.ClientSession, name string, args any) (text string, isError bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	if len(res.Content) != 1 {
		t.Fatalf("call %s: %d content items, want 1", name, len(res.Content))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("call %s: content %T, want text", name, res.Content[0])
	}
	return tc.Text, res.IsError
}

func TestAnMCPClientWithATokenUsesTheTools(t *testing.T) {
	w := newWorld(t)
	cs := w.connect(t, "alice-token")

	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatalf("list tools: %v", err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"admin_whoami", "echo", "whoami"}) {
		t.Errorf("tools %q, want admin_whoami, echo and whoami", names)
	}

	t.Run("whoami returns the upstream user, fetched with the upstream token", func(t *testing.T) {
		text, isErr := callTool(t, cs, "whoami", map[string]any{})
		if isErr || !strings.Contains(text, `"login":"octocat"`) {
			t.Errorf("whoami = %q (error %v), want octocat's identity", text, isErr)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		// No token passthrough: the upstream sees only the upstream token.
		if !slices.Equal(w.userinfoAuth, []string{"Bearer " + upstreamToken}) {
			t.Errorf("the upstream saw Authorization %q", w.userinfoAuth)
		}
	})
	t.Run("echo echoes", func(t *testing.T) {
		if text, isErr := callTool(t, cs, "echo", map[string]any{"text": "hello"}); isErr || text != "hello" {
			t.Errorf("echo = %q (error %v)", text, isErr)
		}
	})
}

func TestAdminWhoamiNeedsToolsAdmin(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := w.connect(t, "alice-token").CallTool(ctx, &mcp.CallToolParams{Name: "admin_whoami", Arguments: map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("admin_whoami with scope mcp: %v, want the 403 of a step-up", err)
	}
	text, isErr := callTool(t, w.connect(t, "admin-token"), "admin_whoami", map[string]any{})
	if isErr || !strings.Contains(text, `"login":"octocat"`) || !strings.Contains(text, `"scopes":["mcp","tools:admin"]`) {
		t.Errorf("admin_whoami with tools:admin = %q (error %v)", text, isErr)
	}
}

func TestWhoamiWithoutAnUpstreamTokenIsAClearToolError(t *testing.T) {
	w := newWorld(t)
	cs := w.connect(t, "no-upstream")
	text, isErr := callTool(t, cs, "whoami", map[string]any{})
	if !isErr || !strings.Contains(text, "no upstream access token") {
		t.Errorf("whoami = %q (error %v), want a tool error about the upstream token", text, isErr)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.userinfoAuth) != 0 {
		t.Errorf("the upstream was called anyway: %q", w.userinfoAuth)
	}
}

func TestARequestWithoutATokenIsSentToTheMetadata(t *testing.T) {
	w := newWorld(t)
	prmURL := w.base + "/.well-known/oauth-protected-resource/mcp"

	resp, err := http.Post(w.mcpURL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
	if got, want := resp.Header.Get("WWW-Authenticate"), `Bearer scope="mcp", resource_metadata="`+prmURL+`"`; got != want {
		t.Errorf("WWW-Authenticate %q, want %q", got, want)
	}

	resp, err = http.Get(prmURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var prm struct {
		Resource string   `json:"resource"`
		Scopes   []string `json:"scopes_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&prm); err != nil || prm.Resource != w.mcpURL || !slices.Equal(prm.Scopes, []string{"mcp", "tools:admin"}) {
		t.Errorf("metadata %+v (%v), want resource %s and scopes mcp and tools:admin (admin_whoami's)", prm, err, w.mcpURL)
	}
}

func TestAnotherUserCannotUseTheSession(t *testing.T) {
	w := newWorld(t)
	cs := w.connect(t, "alice-token")

	req, _ := http.NewRequest(http.MethodPost, w.mcpURL, strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer bob-token")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", cs.ID())
	req.Header.Set("Mcp-Protocol-Version", cs.InitializeResult().ProtocolVersion)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The SDK binds the session to the user the middleware reported.
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "session user mismatch") {
		t.Errorf("bob on alice's session: status %d %q, want 403 session user mismatch", resp.StatusCode, body)
	}
}

// With a JWT the server verifies the token itself, and whoami still reaches the
// upstream: it asks introspection for the upstream token, once.
func TestWhoamiWithAJWT(t *testing.T) {
	w := newWorld(t)
	tok := w.jwt(t, "dave", map[string]any{"sub": "dave", "upstream_access_token": upstreamToken})
	cs := w.connect(t, tok)
	if text, isErr := callTool(t, cs, "echo", map[string]any{"text": "hi"}); isErr || text != "hi" {
		t.Fatalf("echo = %q (error %v)", text, isErr)
	}
	w.mu.Lock()
	asked := w.introspections
	w.mu.Unlock()
	if asked != 0 {
		t.Errorf("%d introspections before whoami, want none: the JWT is verified locally", asked)
	}
	for range 2 {
		text, isErr := callTool(t, cs, "whoami", map[string]any{})
		if isErr || !strings.Contains(text, `"login":"octocat"`) {
			t.Errorf("whoami = %q (error %v), want octocat's identity", text, isErr)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.introspections != 1 {
		t.Errorf("%d introspections for two whoami calls, want 1 (cached)", w.introspections)
	}
}

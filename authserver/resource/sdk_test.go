package resource

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The TokenVerifier plugged into the Go MCP SDK's own middleware.
func TestTokenVerifierWithSDKMiddleware(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	as.set("tok", clock.Now(), func(a map[string]any) { a["scope"] = "admin" })
	as.set("foreign", clock.Now(), func(a map[string]any) { a["aud"] = "https://other.example.com/mcp" })
	v := newTestVerifier(t, as, clock, func(c *Config) { c.ScopeImplies = map[string][]string{"admin": {"mcp"}} })

	var seen *auth.TokenInfo
	h := auth.RequireBearerToken(v.TokenVerifier(), &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: v.MetadataURL(),
		Scopes:              v.RequiredScopes(),
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = auth.TokenInfoFromContext(r.Context()) }))

	t.Run("a valid token reaches the handler with the user, expanded scopes and upstream token", func(t *testing.T) {
		rec := serve(h, bearerRequest("/mcp", "tok"))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if seen == nil || seen.UserID != "user-1" || !slices.Equal(seen.Scopes, []string{"admin", "mcp"}) ||
			!seen.Expiration.Equal(clock.Now().Add(15*time.Minute)) {
			t.Fatalf("TokenInfo = %+v", seen)
		}
		if info, ok := FromTokenInfo(seen); !ok || info.UpstreamAccessToken != "upstream-tok" {
			t.Errorf("FromTokenInfo = %v, %v", info, ok)
		}
	})

	tests := []struct {
		name       string
		token      string
		wantStatus int
	}{
		{"an unknown token gets 401", "unknown", http.StatusUnauthorized},
		{"a token for another resource gets 401", "foreign", http.StatusUnauthorized},
		{"a malformed token gets 401", "a,b", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(h, bearerRequest("/mcp", tt.token))
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			want := `Bearer resource_metadata="` + testPRMURL + `", scope="mcp"`
			if got := rec.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
		})
	}

	t.Run("an unreachable authorization server is an error, not an invalid token", func(t *testing.T) {
		as.setStatus(http.StatusServiceUnavailable)
		if rec := serve(h, bearerRequest("/mcp", "fresh")); rec.Code != http.StatusInternalServerError {
			t.Errorf("status %d, want the SDK's 500", rec.Code)
		}
	})
}

// JWTs through the SDK's own middleware in front of a real MCP server on the Go MCP
// SDK, with the SDK's client: tools see the caller, revocation ends the session.
func TestJWTsThroughTheSDK(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	key := newKey(t, "k", jose.ES256)
	as.publish(key)

	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	mcpURL := srv.URL + "/mcp"
	v := newJWTVerifier(t, as, clock, func(c *Config) {
		c.Resource = mcpURL
		c.RevocationPollInterval = 50 * time.Millisecond
	})

	mcpServer := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	mcp.AddTool(mcpServer, &mcp.Tool{Name: "whoami"}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		info, ok := FromTokenInfo(req.Extra.TokenInfo)
		if !ok {
			return nil, nil, errors.New("no token info")
		}
		text := info.Subject + " " + info.ClientID + " " + info.GrantID + " " + strings.Join(req.Extra.TokenInfo.Scopes, ",")
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	})
	h = auth.RequireBearerToken(v.TokenVerifier(), &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: v.MetadataURL(),
		Scopes:              v.RequiredScopes(),
	})(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return mcpServer }, nil))

	token := func(edit func(map[string]any)) string {
		return mint(t, key, as.claims(clock.Now(), func(c map[string]any) {
			c["aud"] = mcpURL
			if edit != nil {
				edit(c)
			}
		}))
	}
	connect := func(tok string) (*mcp.ClientSession, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		client := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil)
		return client.Connect(ctx, &mcp.StreamableClientTransport{
			Endpoint:   mcpURL,
			HTTPClient: &http.Client{Transport: bearerTransport(tok)},
		}, nil)
	}

	tok := token(nil)
	cs, err := connect(tok)
	if err != nil {
		t.Fatalf("connect with a valid JWT: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %+v", err, res)
	}
	if got := res.Content[0].(*mcp.TextContent).Text; got != "user-1 client-1 grant-1 mcp,tools:read" {
		t.Errorf("whoami = %q", got)
	}

	for name, bad := range map[string]string{
		"another audience":  token(func(c map[string]any) { c["aud"] = "https://other.example.com/mcp" }),
		"an expired token":  token(func(c map[string]any) { c["exp"] = clock.Now().Add(-time.Minute).Unix() }),
		"too little scope":  token(func(c map[string]any) { c["scope"] = "other" }),
		"HS256 with no key": forge(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "k"}, as.claims(clock.Now(), nil), []byte("k")),
	} {
		if _, err := connect(bad); err == nil {
			t.Errorf("%s: connected", name)
		}
	}

	as.revokeGrant("grant-1")
	waitFor(t, func() bool {
		req, _ := http.NewRequest(http.MethodPost, mcpURL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err == nil {
		t.Error("the session of a revoked grant can still call tools")
	}
}

func bearerTransport(tok string) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
		return http.DefaultTransport.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

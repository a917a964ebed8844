package resource

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// toolScopesConfig is the per-tool setup of these tests: three tools behind a
// hierarchy (admin implies write implies read) and one that needs nothing more.
func toolScopesConfig(c *Config) {
	c.ToolScopes = map[string][]string{
		"admin_tool": {"tools:admin"},
		"write_tool": {"tools:write"},
		"read_tool":  {"tools:read"},
	}
	c.ScopeImplies = map[string][]string{"tools:admin": {"tools:write"}, "tools:write": {"tools:read"}}
}

func callBody(id int, tool string) string {
	return `{"jsonrpc":"2.0","id":` + itoa(id) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// readTracker is a request body that records whether anyone read it.
type readTracker struct {
	r    io.Reader
	read bool
}

func (b *readTracker) Read(p []byte) (int, error) { b.read = true; return b.r.Read(p) }

func TestToolScopes(t *testing.T) {
	const rm = `resource_metadata="` + testPRMURL + `"`
	const needAdmin = `Bearer error="insufficient_scope", error_description="the token lacks a scope this tool needs", scope="mcp tools:admin", ` + rm
	tests := []struct {
		name       string
		scope      string // granted to the token
		body       string
		headers    map[string]string
		method     string // default POST
		wantStatus int
		wantHeader string // WWW-Authenticate
		wantRPC    int    // JSON-RPC error code in the body, for 400s and 413s
		bodyUnread bool   // the answer came before the body was read
	}{
		{name: "a tool with no scopes of its own needs only the required scopes",
			scope: "mcp", body: callBody(1, "echo"), wantStatus: http.StatusOK},
		{name: "a tool's own scope lets its call through",
			scope: "mcp tools:read", body: callBody(1, "read_tool"), wantStatus: http.StatusOK},
		{name: "a broader scope covers a tool that needs a narrower one, transitively",
			scope: "mcp tools:admin", body: callBody(1, "read_tool"), wantStatus: http.StatusOK},
		{name: "a narrower scope does not cover a tool that needs a broader one",
			scope: "mcp tools:write", body: callBody(1, "admin_tool"), wantStatus: http.StatusForbidden, wantHeader: needAdmin},
		{name: "the challenge names the required scopes too, when the token lacks them as well",
			scope: "tools:read", body: callBody(1, "admin_tool"), wantStatus: http.StatusForbidden, wantHeader: needAdmin},
		{name: "tools/list needs only the required scopes",
			scope: "mcp", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, wantStatus: http.StatusOK},
		{name: "agreeing Mcp-Method and Mcp-Name headers let an allowed call through",
			scope: "mcp tools:admin", body: callBody(7, "admin_tool"),
			headers:    map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "admin_tool"},
			wantStatus: http.StatusOK},
		{name: "a call the headers name is refused before the body is read",
			scope: "mcp", body: callBody(7, "admin_tool"),
			headers:    map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "admin_tool"},
			wantStatus: http.StatusForbidden, wantHeader: needAdmin, bodyUnread: true},
		{name: "a base64-encoded Mcp-Name is decoded before it is compared",
			scope: "mcp tools:read", body: callBody(7, "read_tool"),
			headers:    map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?cmVhZF90b29s?="},
			wantStatus: http.StatusOK},
		{name: "headers naming an allowed tool cannot carry a call of another: 400",
			scope: "mcp", body: callBody(7, "admin_tool"),
			headers:    map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo"},
			wantStatus: http.StatusBadRequest, wantRPC: rpcHeaderMismatch},
		{name: "an Mcp-Method that is not the body's method is 400",
			scope: "mcp tools:admin", body: callBody(7, "admin_tool"),
			headers:    map[string]string{"Mcp-Method": "tools/list"},
			wantStatus: http.StatusBadRequest, wantRPC: rpcHeaderMismatch},
		{name: "Mcp-Method tools/call without Mcp-Name is 400",
			scope: "mcp", body: callBody(7, "echo"),
			headers:    map[string]string{"Mcp-Method": "tools/call"},
			wantStatus: http.StatusBadRequest, wantRPC: rpcHeaderMismatch},
		{name: "Mcp-Name without Mcp-Method is 400",
			scope: "mcp", body: callBody(7, "echo"),
			headers:    map[string]string{"Mcp-Name": "echo"},
			wantStatus: http.StatusBadRequest, wantRPC: rpcHeaderMismatch},
		{name: "a malformed base64 Mcp-Name is 400",
			scope: "mcp", body: callBody(7, "echo"),
			headers:    map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?***?="},
			wantStatus: http.StatusBadRequest, wantRPC: rpcHeaderMismatch},
		{name: "a batch needs the scopes of every tool it calls, named in one challenge",
			scope: "mcp tools:read", body: "[" + callBody(1, "read_tool") + "," + callBody(2, "admin_tool") + "]",
			wantStatus: http.StatusForbidden,
			wantHeader: `Bearer error="insufficient_scope", error_description="the token lacks a scope this tool needs", scope="mcp tools:read tools:admin", ` + rm},
		{name: "a batch whose calls are all allowed goes through",
			scope: "mcp tools:admin", body: "[" + callBody(1, "read_tool") + "," + callBody(2, "admin_tool") + "]",
			wantStatus: http.StatusOK},
		{name: "headers cannot describe a batch",
			scope: "mcp tools:admin", body: "[" + callBody(1, "read_tool") + "]",
			headers:    map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "read_tool"},
			wantStatus: http.StatusBadRequest, wantRPC: rpcHeaderMismatch},
		{name: "a key another decoder reads as name (Go's encoding/json folds case) is a parse error, not a guess",
			scope: "mcp", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"admin_tool","name":"echo"}}`,
			wantStatus: http.StatusBadRequest, wantRPC: rpcParseError},
		{name: "a name in another case alone is a parse error too",
			scope: "mcp", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"admin_tool"}}`,
			wantStatus: http.StatusBadRequest, wantRPC: rpcParseError},
		{name: "a repeated name is a parse error: decoders disagree on which wins",
			scope: "mcp", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"admin_tool"}}`,
			wantStatus: http.StatusBadRequest, wantRPC: rpcParseError},
		{name: "a Method key that would make the call look like a response is a parse error",
			scope: "mcp", body: `{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"admin_tool"}}`,
			wantStatus: http.StatusBadRequest, wantRPC: rpcParseError},
		{name: "a body that is not JSON is 400 with a parse error",
			scope: "mcp", body: `{"jsonrpc":"2.0",`, wantStatus: http.StatusBadRequest, wantRPC: rpcParseError},
		{name: "a tool name that is not a string is 400",
			scope: "mcp", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["admin_tool"]}}`,
			wantStatus: http.StatusBadRequest, wantRPC: rpcParseError},
		{name: "a body over the limit is 413",
			scope: "mcp", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 2048) + `"}}}`,
			wantStatus: http.StatusRequestEntityTooLarge, wantRPC: rpcInvalidRequest},
		{name: "a GET is not read for a tool",
			scope: "mcp", method: http.MethodGet, wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			clock := newClock()
			as.set("tok", clock.Now(), func(a map[string]any) { a["scope"] = tt.scope })
			v := newTestVerifier(t, as, clock, func(c *Config) {
				toolScopesConfig(c)
				c.MaxMessageBytes = 1024
			})
			var got string
			h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = string(b)
			}))
			body := &readTracker{r: strings.NewReader(tt.body)}
			r := httptest.NewRequest(cmpOr(tt.method, http.MethodPost), "/mcp", body)
			r.Header.Set("Authorization", "Bearer tok")
			for k, val := range tt.headers {
				r.Header.Set(k, val)
			}
			rec := serve(h, r)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.wantHeader {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, tt.wantHeader)
			}
			if tt.wantStatus == http.StatusOK && got != tt.body {
				t.Errorf("the handler read %q, want the body restored: %q", got, tt.body)
			}
			if tt.wantRPC != 0 {
				var resp struct {
					JSONRPC string          `json:"jsonrpc"`
					ID      json.RawMessage `json:"id"`
					Error   struct{ Code int }
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.JSONRPC != "2.0" || resp.Error.Code != tt.wantRPC {
					t.Errorf("body %s, want a JSON-RPC error %d", rec.Body, tt.wantRPC)
				}
			}
			if tt.bodyUnread && body.read {
				t.Error("the body was read, though the headers were enough to refuse")
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestHeaderMismatchNamesTheRequestID(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	as.set("tok", clock.Now(), nil)
	v := newTestVerifier(t, as, clock, toolScopesConfig)
	r := bearerRequest("/mcp", "tok")
	r.Body = io.NopCloser(strings.NewReader(callBody(42, "admin_tool")))
	r.Header.Set("Mcp-Method", "tools/call")
	r.Header.Set("Mcp-Name", "echo")
	rec := serve(v.Middleware(okHandler), r)
	m := decodeJSON(t, rec.Body.Bytes())
	if rec.Code != http.StatusBadRequest || m["id"] != float64(42) {
		t.Fatalf("status %d, body %s: want 400 answering id 42", rec.Code, rec.Body)
	}
	if msg := m["error"].(map[string]any)["message"].(string); !strings.Contains(msg, `Mcp-Name header value "echo" does not match body value "admin_tool"`) {
		t.Errorf("message %q", msg)
	}
}

// Tool scopes work the same whether the token is a JWT verified here or introspected.
func TestToolScopesWithJWTs(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	key := newKey(t, "k", jose.ES256)
	as.publish(key)
	v := newJWTVerifier(t, as, clock, toolScopesConfig)
	h := v.Middleware(okHandler)
	for _, tt := range []struct {
		scope string
		want  int
	}{{"mcp tools:write", http.StatusForbidden}, {"mcp tools:admin", http.StatusOK}} {
		tok := mint(t, key, as.claims(clock.Now(), func(c map[string]any) { c["scope"] = tt.scope }))
		r := bearerRequest("/mcp", tok)
		r.Body = io.NopCloser(strings.NewReader(callBody(1, "admin_tool")))
		if rec := serve(h, r); rec.Code != tt.want {
			t.Errorf("scope %q: status %d, want %d (%s)", tt.scope, rec.Code, tt.want, rec.Body)
		}
	}
	if n := as.introspections.Load(); n != 0 {
		t.Errorf("%d introspections: JWTs should be checked here", n)
	}
}

func TestToolScopesConfig(t *testing.T) {
	as := newFakeAS(t)
	for _, tt := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"offline_access is no tool's scope", func(c *Config) { c.ToolScopes = map[string][]string{"t": {"offline_access"}} }, "asks for a refresh token"},
		{"a tool scope must be a scope token", func(c *Config) { c.ToolScopes = map[string][]string{"t": {"a b"}} }, "not a valid scope"},
		{"a tool needs a name", func(c *Config) { c.ToolScopes = map[string][]string{"": {"x"}} }, "tool name is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Resource: testResource, AuthorizationServers: []string{as.issuer}, ClientID: "c", ClientSecret: "s", RequiredScopes: []string{"mcp"}}
			tt.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error saying %q", err, tt.want)
			}
		})
	}
	t.Run("scopes_supported lists the tool scopes after the required ones", func(t *testing.T) {
		v := newTestVerifier(t, as, newClock(), toolScopesConfig)
		if got := v.Metadata().ScopesSupported; !slices.Equal(got, []string{"mcp", "tools:admin", "tools:read", "tools:write"}) {
			t.Errorf("scopes_supported %q", got)
		}
		if got := v.ToolScopes("admin_tool"); !slices.Equal(got, []string{"mcp", "tools:admin"}) {
			t.Errorf("ToolScopes(admin_tool) = %q", got)
		}
	})
	t.Run("offline_access never reaches a challenge, even from a route", func(t *testing.T) {
		v := newTestVerifier(t, as, newClock(), nil)
		rec := serve(v.RequireScopes("offline_access", "files")(okHandler), bearerRequest("/mcp", ""))
		if got := rec.Header().Get("WWW-Authenticate"); strings.Contains(got, "offline_access") || !strings.Contains(got, `scope="mcp files"`) {
			t.Errorf("WWW-Authenticate %s", got)
		}
	})
}

// tools/list through the real Go MCP SDK server, answering with SSE (its default) and
// with JSON, on protocol 2025-11-25 (method and tool name from the body) and, with a
// stateless server, 2026-07-28 (from the Mcp-Method and Mcp-Name headers, which the
// SDK client sends and the body must match): each token sees the tools it can call,
// and only those it can call go through.
func TestFilterToolsListWithTheSDK(t *testing.T) {
	for _, tt := range []struct {
		name        string
		opts        mcp.StreamableHTTPOptions
		wantHeaders bool
	}{
		{"SSE answers, names from the body", mcp.StreamableHTTPOptions{}, false},
		{"JSON answers, names from the body", mcp.StreamableHTTPOptions{JSONResponse: true}, false},
		{"stateless 2026-07-28, names from the headers", mcp.StreamableHTTPOptions{Stateless: true}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			clock := newClock()
			as.set("reader", clock.Now(), func(a map[string]any) { a["scope"] = "mcp tools:read" })
			as.set("admin", clock.Now(), func(a map[string]any) { a["scope"] = "mcp tools:admin" })

			var h http.Handler
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
			t.Cleanup(srv.Close)
			v := newTestVerifier(t, as, clock, func(c *Config) {
				toolScopesConfig(c)
				c.Resource = srv.URL + "/mcp"
				c.AcceptOriginAudience = false
				c.FilterToolsList = true
			})
			as.set("reader", clock.Now(), func(a map[string]any) { a["scope"], a["aud"] = "mcp tools:read", srv.URL+"/mcp" })
			as.set("admin", clock.Now(), func(a map[string]any) { a["scope"], a["aud"] = "mcp tools:admin", srv.URL+"/mcp" })

			server := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
			for _, tool := range []string{"echo", "read_tool", "write_tool", "admin_tool"} {
				mcp.AddTool(server, &mcp.Tool{Name: tool}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
					return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: tool}}}, nil, nil
				})
			}
			opts := tt.opts
			inner := v.Middleware(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &opts))
			var namedCalls atomic.Int32 // tools/call requests that carried Mcp-Name
			h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Mcp-Method") == "tools/call" && r.Header.Get("Mcp-Name") != "" {
					namedCalls.Add(1)
				}
				inner.ServeHTTP(w, r)
			})
			t.Cleanup(func() {
				if got := namedCalls.Load() > 0; got != tt.wantHeaders {
					t.Errorf("tools/call with Mcp-Name headers: %v, want %v", got, tt.wantHeaders)
				}
			})

			for tok, want := range map[string][]string{
				"reader": {"echo", "read_tool"},
				"admin":  {"admin_tool", "echo", "read_tool", "write_tool"},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx,
					&mcp.StreamableClientTransport{Endpoint: srv.URL + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport(tok)}}, nil)
				if err != nil {
					cancel()
					t.Fatalf("%s: connect: %v", tok, err)
				}
				res, err := cs.ListTools(ctx, nil)
				if err != nil {
					t.Fatalf("%s: tools/list: %v", tok, err)
				}
				var names []string
				for _, tl := range res.Tools {
					names = append(names, tl.Name)
				}
				slices.Sort(names)
				if !slices.Equal(names, want) {
					t.Errorf("%s sees %q, want %q", tok, names, want)
				}
				// The filter hides; the scope check still refuses.
				_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "admin_tool", Arguments: map[string]any{}})
				if (err == nil) != (tok == "admin") {
					t.Errorf("%s: calling admin_tool: %v", tok, err)
				}
				cs.Close()
				cancel()
			}
		})
	}
}

// The SSE rewriting on its own: events split across writes, CRLF lines, fields other
// than data kept, and events that are not tools/list results passed on unchanged.
func TestToolsFilterSSE(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "text/event-stream")
	f := newToolsFilter(rec, &listCalls{ids: []json.RawMessage{json.RawMessage(`"a"`)}, batch: true},
		func(tool string) bool { return tool != "hidden" })
	stream := "event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n" +
		"event: message\nid: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"a\",\n" +
		"data: \"result\":{\"tools\":[{\"name\":\"shown\"},{\"name\":\"hidden\"}]}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":\"b\",\"result\":{\"tools\":[{\"name\":\"hidden\"}]}}\n\n"
	f.WriteHeader(http.StatusOK)
	for i := 0; i < len(stream); i += 7 { // small writes cut events anywhere
		if _, err := f.Write([]byte(stream[i:min(i+7, len(stream))])); err != nil {
			t.Fatal(err)
		}
	}
	f.finish()
	want := "event: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\r\n\r\n" +
		"event: message\nid: 2\ndata: {\"id\":\"a\",\"jsonrpc\":\"2.0\",\"result\":{\"tools\":[{\"name\":\"shown\"}]}}\n\n" +
		"data: {\"jsonrpc\":\"2.0\",\"id\":\"b\",\"result\":{\"tools\":[{\"name\":\"hidden\"}]}}\n\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("stream\n got %q\nwant %q", got, want)
	}
}

func TestToolsFilterJSONBatch(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	rec.Header().Set("Content-Length", "999")
	f := newToolsFilter(rec, &listCalls{ids: []json.RawMessage{json.RawMessage(`2`)}, batch: true},
		func(tool string) bool { return tool != "hidden" })
	_, _ = f.Write([]byte(`[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"hidden"}]}},{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"hidden"},{"name":"shown"}],"nextCursor":"c"}}]`))
	f.finish()
	var got []struct {
		ID     int
		Result struct {
			Tools      []struct{ Name string }
			NextCursor string
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if len(got) != 2 || len(got[0].Result.Tools) != 1 || len(got[1].Result.Tools) != 1 ||
		got[1].Result.Tools[0].Name != "shown" || got[1].Result.NextCursor != "c" {
		t.Errorf("filtered batch %s: only id 2 answers a tools/list, and only its hidden tool goes", rec.Body)
	}
	if rec.Header().Get("Content-Length") != itoa(rec.Body.Len()) {
		t.Errorf("Content-Length %s for %d bytes", rec.Header().Get("Content-Length"), rec.Body.Len())
	}
}

// Package server is the example MCP server as a library: an MCP server on the
// official Go SDK, protected by mcpauth's resource package, with a tool that calls the
// upstream identity provider with the user's upstream token. The command in the parent
// directory wires flags to New; tests start New in process.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpauth/mcpauth/authserver/resource"
)

// Version is reported to MCP clients in the initialize result.
const Version = "0.1.0"

// DefaultScope is the scope every request needs unless Config.Scopes says otherwise;
// it is the scope an mcpauth authorization server grants by default.
const DefaultScope = "mcp"

// DefaultToolScopes are the scopes the example's tools need beyond Config.Scopes
// unless Config.ToolScopes says otherwise: admin_whoami needs tools:admin, so calling
// it makes a client step up.
var DefaultToolScopes = map[string][]string{"admin_whoami": {"tools:admin"}}

// DefaultScopeImplies is the example's scope hierarchy unless Config.ScopeImplies
// says otherwise: tools:admin implies tools:write, which implies tools:read.
var DefaultScopeImplies = map[string][]string{"tools:admin": {"tools:write"}, "tools:write": {"tools:read"}}

// upstreamTimeout bounds the call to the upstream user-info endpoint.
const upstreamTimeout = 10 * time.Second

// maxUserinfoBytes bounds the upstream answer returned to the client.
const maxUserinfoBytes = 1 << 20

// Config configures the example server.
type Config struct {
	// ResourceURL is the server's canonical URL as clients reach it, MCP endpoint
	// path included (https://mcp.example.com/mcp). Its path is where the MCP
	// endpoint is served.
	ResourceURL string
	// Issuer is the mcpauth authorization server's issuer URL.
	Issuer string
	// IntrospectionEndpoint overrides discovery from the issuer's metadata.
	IntrospectionEndpoint string
	// ClientID and ClientSecret authenticate this server at the introspection
	// endpoint. The authorization server must allow this client to see upstream
	// tokens, or whoami has none to use.
	ClientID     string
	ClientSecret string
	// UpstreamUserinfoURL is the upstream provider's user-info endpoint (for GitHub
	// https://api.github.com/user, for an OpenID provider its userinfo_endpoint).
	UpstreamUserinfoURL string
	// Scopes are required on every request. Empty: DefaultScope.
	Scopes []string
	// ToolScopes are the scopes each tool needs beyond Scopes (resource.Config's).
	// Nil: DefaultToolScopes; empty: none.
	ToolScopes map[string][]string
	// ScopeImplies is the scope hierarchy. Nil: DefaultScopeImplies.
	ScopeImplies map[string][]string
	// FilterToolsList makes tools/list show only the tools the token can call.
	FilterToolsList bool
	// HTTPClient makes the introspection and upstream requests. Nil:
	// http.DefaultClient.
	HTTPClient *http.Client
	// Logger receives the server's logs. Nil: slog.Default().
	Logger *slog.Logger
}

// New returns the server's HTTP handler: the MCP endpoint at ResourceURL's path behind
// resource.Middleware, the protected-resource metadata at its well-known URLs, and
// /healthz. JWT access tokens are verified locally (the verifier follows the
// authorization server's revocation feed for the life of the process); opaque ones are
// introspected.
func New(cfg Config) (http.Handler, error) {
	if cfg.UpstreamUserinfoURL == "" {
		return nil, errors.New("an upstream user-info URL is required")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{DefaultScope}
	}
	if cfg.ToolScopes == nil {
		cfg.ToolScopes = DefaultToolScopes
	}
	if cfg.ScopeImplies == nil {
		cfg.ScopeImplies = DefaultScopeImplies
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	v, err := resource.New(resource.Config{
		Resource:              cfg.ResourceURL,
		AuthorizationServers:  []string{cfg.Issuer},
		IntrospectionEndpoint: cfg.IntrospectionEndpoint,
		ClientID:              cfg.ClientID,
		ClientSecret:          cfg.ClientSecret,
		RequiredScopes:        cfg.Scopes,
		ToolScopes:            cfg.ToolScopes,
		ScopeImplies:          cfg.ScopeImplies,
		FilterToolsList:       cfg.FilterToolsList,
		ResourceName:          "mcpauth example MCP server",
		HTTPClient:            cfg.HTTPClient,
		Logger:                cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	path := "/"
	if u, _ := url.Parse(v.Resource()); u.Path != "" { // parsed by resource.New already
		path = u.Path
	}
	mux := http.NewServeMux()
	v.MountMetadata(mux)
	mux.Handle(path, v.Middleware(MCPHandler(cfg, v)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return mux, nil
}

// MCPHandler is the MCP endpoint alone, its tools on the SDK's streamable HTTP
// transport, without the authorization New puts in front of it. The benchmark
// (test/bench/mcpbench) serves it unprotected as the baseline of the same server;
// anything else should use New. v gives whoami the upstream token of a JWT.
func MCPHandler(cfg Config, v *resource.Verifier) http.Handler {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &tools{cfg: cfg, verifier: v}
	srv := mcp.NewServer(&mcp.Implementation{Name: "mcpauth-example", Version: Version}, nil)
	mcp.AddTool(srv, &mcp.Tool{
		Name:        "whoami",
		Description: "Returns who you are at the upstream identity provider, as its user-info endpoint says.",
	}, s.whoami)
	mcp.AddTool(srv, &mcp.Tool{
		Name: "admin_whoami",
		Description: "Like whoami, for administrators: also returns the scopes of your token. " +
			"Needs the tools:admin scope, so calling it makes a client that lacks it step up.",
	}, s.adminWhoami)
	mcp.AddTool(srv, &mcp.Tool{
		Name:        "echo",
		Description: "Echoes the text back.",
	}, s.echo)
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Logger: cfg.Logger})
}

// tools holds what the tool handlers need.
type tools struct {
	cfg      Config
	verifier *resource.Verifier
}

// whoami calls the upstream user-info endpoint with the user's upstream access token.
// It never forwards the MCP client's own token: the MCP specification forbids token
// passthrough ("MCP servers MUST NOT accept or transit any other tokens"); the
// authorization server hands this server the upstream token through introspection
// (for a JWT verified locally, Verifier.UpstreamToken introspects it on demand).
func (t *tools) whoami(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
	info, ok := resource.FromTokenInfo(req.Extra.TokenInfo)
	if !ok || t.verifier == nil {
		return nil, nil, errors.New("this request carries no verified token")
	}
	body, err := t.userinfo(ctx, info)
	if err != nil {
		return nil, nil, err
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(body)}}}, nil, nil
}

// adminWhoami is whoami plus the token's scopes. The resource middleware lets a call
// of it through only with tools:admin (Config.ToolScopes); the tool trusts that, as
// tools behind it should.
func (t *tools) adminWhoami(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
	info, ok := resource.FromTokenInfo(req.Extra.TokenInfo)
	if !ok || t.verifier == nil {
		return nil, nil, errors.New("this request carries no verified token")
	}
	body, err := t.userinfo(ctx, info)
	if err != nil {
		return nil, nil, err
	}
	out, err := json.Marshal(map[string]any{"userinfo": json.RawMessage(body), "scopes": info.Scopes})
	if err != nil {
		return nil, nil, fmt.Errorf("the upstream user-info answer is not JSON: %w", err)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(out)}}}, nil, nil
}

// userinfo calls the upstream user-info endpoint with the user's upstream token.
func (t *tools) userinfo(ctx context.Context, info *resource.Info) ([]byte, error) {
	upstreamToken, _, err := t.verifier.UpstreamToken(ctx, info)
	if err != nil {
		return nil, fmt.Errorf("get the upstream access token: %w", err)
	}
	if upstreamToken == "" {
		return nil, errors.New("no upstream access token for this user: the authorization server did not share one " +
			"(sign in again, or allow this MCP server's introspection client to see upstream tokens)")
	}
	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, t.cfg.UpstreamUserinfoURL, nil)
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+upstreamToken)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "mcpauth-example/"+Version) // GitHub's API refuses requests without one
	resp, err := t.cfg.HTTPClient.Do(r)
	if err != nil {
		return nil, fmt.Errorf("call the upstream user-info endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUserinfoBytes))
	if err != nil {
		return nil, fmt.Errorf("read the upstream user-info answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the upstream user-info endpoint answered %s", resp.Status)
	}
	return body, nil
}

// echoArgs are the echo tool's arguments.
type echoArgs struct {
	Text string `json:"text" jsonschema:"the text to echo back"`
}

// echo needs nothing but the base scope every request has.
func (t *tools) echo(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
}

// Package resource is what an MCP server imports to be an OAuth 2.1 protected resource
// of an mcpauth authorization server.
//
// It does four things, each the MCP authorization specification's job for the resource
// side:
//
//   - serves RFC 9728 protected-resource metadata, at the path-inserted well-known URL
//     (/.well-known/oauth-protected-resource/<mcp path>) and at the root, so clients can
//     find the authorization server ([Verifier.MountMetadata]);
//   - answers a request without a usable token with 401 and
//     WWW-Authenticate: Bearer resource_metadata="…", one with too little scope with 403
//     error="insufficient_scope" naming every scope the operation needs, and a token in
//     the query string with 400 ([Verifier.Middleware], [Verifier.RequireScopes]);
//   - validates bearer tokens by RFC 7662 introspection at the authorization server,
//     behind a short, bounded cache that never outlives the token, and checks the
//     token was issued for this server (RFC 8707 audience);
//   - hands handlers and MCP tools who the caller is, their scopes and the user's
//     upstream access token ([FromContext], [FromTokenInfo]).
//
// The package never reads the authorization server's token store: it asks the server.
// It imports nothing of the operator, so an MCP server pulls in only this package and
// the Go MCP SDK.
//
// # Use with the Go MCP SDK
//
//	v, err := resource.New(resource.Config{
//		Resource:             "https://mcp.example.com/mcp",
//		AuthorizationServers: []string{"https://auth.example.com"},
//		ClientID:             "mcp-server",
//		ClientSecret:         secret,
//		RequiredScopes:       []string{"mcp"},
//	})
//	mux := http.NewServeMux()
//	v.MountMetadata(mux)
//	mux.Handle("/mcp", v.Middleware(mcp.NewStreamableHTTPHandler(getServer, nil)))
//
// [Verifier.Middleware] also fills the SDK's own token information, so tool handlers
// read the caller from the request: resource.FromTokenInfo(req.Extra.TokenInfo), and
// the SDK binds each MCP session to the user who created it.
//
// [Verifier.TokenVerifier] plugs the same validation into the SDK's
// auth.RequireBearerToken instead. Prefer Middleware: the SDK's middleware compares
// scopes by exact string, never writes error="insufficient_scope" (so clients will not
// step up from its 403), answers an authorization server outage with 500 rather than
// 503, and does not refuse tokens in the query string.
package resource

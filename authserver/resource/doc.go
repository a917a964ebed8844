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
//   - validates bearer tokens, JWTs locally and opaque ones by introspection (below),
//     and checks the token was issued for this server (RFC 8707 audience);
//   - hands handlers and MCP tools who the caller is (sub, client_id, the grant id),
//     their scopes and the user's upstream access token ([FromContext],
//     [FromTokenInfo], [Verifier.UpstreamToken]).
//
// The package never reads the authorization server's token store: it asks the server
// or verifies signatures. It imports nothing of the operator, so an MCP server pulls
// in only this package, go-jose and the Go MCP SDK.
//
// # JWT access tokens and opaque tokens
//
// An mcpauth server issues JWT access tokens (RFC 9068, tokens.accessTokenFormat:
// jwt, the default) or opaque ones (opaque). Verify tells them apart by their shape
// and needs no setting:
//
//   - A JWT is verified here, with no request to the server: the signature against
//     the server's JWKS (its metadata's jwks_uri, fetched once and cached; fetched
//     again when a token names an unknown kid, at most once per 10 s with concurrent
//     misses sharing one fetch, and in the background every 5 minutes so a withdrawn
//     key stops verifying), alg ES256 or RS256 only (never none or HS*), typ at+jwt,
//     iss equal to the first authorization server, aud naming this resource, exp and
//     nbf with 10 s of leeway. A verified token is remembered by its hash until it
//     expires, so the next request with it costs about a microsecond.
//   - Anything else is introspected (RFC 7662) with ClientID and ClientSecret, behind
//     a short, bounded cache that never outlives the token.
//
// A JWT carries no upstream token: [Verifier.UpstreamToken] introspects it on demand,
// so only tools that call the upstream API pay for a request.
//
// # Revocation
//
// A JWT stays valid until it expires however it is verified, so the Verifier follows
// the server's revocation feed (GET /oauth/revocations, with ClientID and
// ClientSecret) every 2 s from the first JWT on, and refuses a JWT whose grant (gid)
// or jti it names: a grant revoked at the server stops working here within one poll,
// well inside the 5 s mcpauth promises. If the feed cannot be read for
// RevocationMaxLag (4 s by default), JWTs are introspected instead, as opaque tokens
// are, until it answers again, each answer reused for at most RevocationMaxLag so a
// revocation still arrives within it: the server's word is then authoritative, and an
// unreachable server gives 503, never a wrongly accepted revoked token nor a wrongly
// refused live one. Close stops following the feed; Start begins at once and waits
// for the first read.
//
// # Scopes per tool
//
// Config.ToolScopes maps tool names to the scopes a tools/call of them needs on top
// of RequiredScopes; Config.ScopeImplies says which broader scope implies which
// narrower ones. Middleware then reads each POST's MCP method and tool name, from the
// Mcp-Method and Mcp-Name headers when the client sends them (MCP 2026-07-28) and
// from the JSON-RPC body otherwise (a single message, or a batch for older protocol
// versions; at most MaxMessageBytes, put back for the next handler). Headers and body
// must agree (400 with JSON-RPC error -32020 otherwise). A call that needs more gets
// 403 error="insufficient_scope" with every scope it needs in one challenge, which is
// what makes MCP clients step up. With Config.FilterToolsList, tools/list answers
// (JSON or SSE) list only the tools the token can call. See docs/scopes.md.
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
//	defer v.Close()
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

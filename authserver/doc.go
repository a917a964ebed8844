// Package authserver is the HTTP side of the mcpauth authorization server: an OAuth 2.1
// server for MCP clients that brokers the user's login to one upstream identity provider
// and issues its own tokens: JWT access tokens (RFC 9068) by default, or opaque ones.
//
// Endpoints (paths are appended to the issuer's path, see Options.Issuer):
//
//	GET  /.well-known/oauth-authorization-server   RFC 8414 metadata (also openid-configuration)
//	GET  /oauth/authorize  (and POST)              authorization code request, PKCE (RFC 7636)
//	POST /oauth/consent                            the consent page's Approve/Deny form
//	GET  /oauth/callback   (Options.CallbackPath)   the upstream provider returns here
//	POST /oauth/token                              authorization_code, refresh_token and
//	                                               client_credentials grants, the RFC 8628 device
//	                                               code grant, and RFC 8693 token exchange for the
//	                                               upstream token
//	POST /oauth/device_authorization               RFC 8628, only when DeviceAuthorization is on
//	GET  /oauth/device     (and POST)              its verification page (device.go)
//	POST /oauth/register                           RFC 7591, only when DynamicRegistration is on;
//	                                               rate limited per client address (429, Retry-After),
//	                                               and live registrations bounded per address
//	GET, PUT, DELETE /oauth/register/<client_id>   RFC 7592, with the registration access token
//	POST /oauth/introspect                         RFC 7662, for MCP servers
//	POST /oauth/revoke                             RFC 7009
//	GET  /admin/grants, POST /admin/revoke         the admin API (package adminapi), only with
//	GET  /admin/clients, /admin/clients/count      Options.AdminToken
//	GET  /admin/approvals, POST /admin/approvals
//	GET  /oauth/jwks                               RFC 7517, the keys that verify JWT access tokens
//	GET  /oauth/revocations                        the revocation feed, for MCP servers that verify JWTs
//	GET  /healthz, /readyz, /metrics               probes and Prometheus (always at the root)
//
// All flow state lives in the store.Store, so any replica can serve any step. Nothing
// secret is stored in clear: codes, tokens, upstream states and client secrets are kept
// as HMAC-SHA-256 under a key derived from Options.MasterKey, and the users' upstream
// tokens are sealed with AES-256-GCM under another derived key.
//
// # Registrations kept tidy
//
// A dynamic registration's store record expires at the earlier of its lapse
// (RegistrationTTL after creation) and RegistrationIdleTTL after its last use; each
// use slides it forward. Uses are recorded at most once per touchInterval (an hour),
// and only in the token request's own write (store.TokenPair.ClientUse), so idle
// removal costs no scanner and no extra round trip. The registering address is kept
// with the record, and the store refuses a registration past
// RegistrationMaxPerSource for that address in the same atomic step that would store
// it, for every replica at once.
//
// # Who may log in
//
// Options.Access (package access) is applied at the callback, after the upstream login
// and before anything is issued or stored. A refused user gets a 403 page saying so,
// with a link that takes the browser on to the client's redirect URI with
// error=access_denied; memberships that cannot be read fail the login closed. The
// restricted scopes a user is not granted are left out of the code's scope.
//
// # Agents without a browser
//
// client_credentials (clientcredentials.go) issues a confidential client a token for
// itself: a grant without a user (store.Grants.IssueGrant), so introspection names the
// client as sub, gives no upstream token, and token exchange refuses it. The device
// flow (device.go) stores its approval as a code under the device code's hash, so its
// redemption is a code's: once, a replay revokes.
//
// # Which client may ask
//
// Options.ClientPolicy (package clientpolicy) refuses metadata-document clients on
// hosts it does not list before their document is fetched (an error page at the
// authorization endpoint, invalid_client at the token endpoint), restricts the
// redirect URIs that registrations and documents may name, narrows each kind of
// client's scope to its bound, and, in approval mode, holds new dynamic and
// metadata-document clients at a waiting page that reloads itself until an
// administrator approves them (the admin API, or the registry: ApprovalRegistry).
// Approval is checked when a login starts and again at the callback, so no code is
// issued to a client that is not approved; denying a client revokes its grants.
//
// # Refresh and the upstream token
//
// Refresh tokens rotate (OAuth 2.1 §4.3.1). With Options.RefreshReuseWindow set, a
// rotation also keeps its token response, sealed like the upstream tokens, in the
// store for the window: the same client presenting the rotated token again inside it
// gets that response back, so parallel refreshes and retries keep the session; any
// other reuse revokes the grant. The store settles every reuse in one atomic step, on
// any replica (store.Grants.RotateRefreshToken).
//
// The users' upstream tokens are refreshed ahead of expiry by one caller at a time
// across replicas, under a store lease; the others wait for its result
// (freshUpstreamToken). An upstream that refuses the refresh for good ends the grants
// that depend on it, so their clients log in again.
//
// # Token format
//
// Codes and tokens are "<prefix><grantID>_<random>": the prefix names the kind
// ("mcp_ac_" authorization code, "mcp_at_" access token, "mcp_rt_" refresh token,
// "mcp_dc_" device code), the
// grant ID is 32 lower-case hex characters (it carries no secret: it lets the store find
// the grant's keys, one Redis hash tag per grant) and the random part is 32 bytes from
// crypto/rand, base64url without padding. The store only ever sees the HMAC of the whole
// string, so a stolen database reveals no usable token.
//
// With Options.AccessTokenFormat jwt (the default) access tokens are instead RFC 9068
// JWTs signed by the active key of Options.SigningKeys, carrying the grant ID as "gid"
// and a random "jti"; their record is keyed by the HMAC of the jti. Introspection and
// revocation accept both formats, whatever the option, so changing it breaks no live
// token. docs/tokens.md describes the claims, the JWKS and the revocation feed.
//
// # Cookies
//
// Three cookies, all HttpOnly and SameSite=Lax: "__Host-mcpauth_flow" binds an upstream
// login to the browser that started it (RFC 9700 §4.7) and carries the consent form's
// CSRF binding; "__Host-mcpauth_consent" remembers, HMAC-signed, which clients the
// browser approved; "__Host-mcpauth_user", sealed, names the user who last logged in
// here, so a step-up to a scope with upstream scopes (Options.UpstreamScopes) asks the
// upstream provider for only what that user's upstream token lacks (stepup.go). It is
// a hint, never authentication. The __Host- prefix requires the Secure attribute, which browsers
// refuse over http, so when the issuer is plain http (development on a loopback address)
// the cookies are named without the prefix and without Secure.
package authserver

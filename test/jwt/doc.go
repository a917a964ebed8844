// Package jwt holds the end-to-end proofs of JWT access tokens (issue 9) with the real
// pieces together: the authorization server built by authserver/app from a config file,
// on a real redis-server, with a signing keys file it follows; the fake upstream IdP;
// and MCP servers on the official Go MCP SDK that verify the tokens with
// authserver/resource, one behind the resource package's own middleware and one behind
// the SDK's auth.RequireBearerToken. A login over HTTP (authorization code with PKCE)
// yields the JWTs.
//
// The resource package's own tests use a stand-in for the authorization server; these
// tests are where its contracts (JWKS, revocation feed, metadata) meet the real one.
package jwt

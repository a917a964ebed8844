// Package adminapi is the wire format of the authorization server's admin API: the
// paths, the requests and the answers that the server (package authserver) serves and
// the `mcpauth admin` CLI (package internal/admincli) sends. It has no dependencies,
// so a client of the API imports nothing of the server.
//
// Every call carries "Authorization: Bearer <admin token>", the contents of the file
// named by secrets.adminTokenFile. The API is absent (404) on a server without one.
// Errors are JSON {"error": "...", "error_description": "..."} as in OAuth.
package adminapi

import "time"

// Paths, appended to the issuer URL.
const (
	// PathGrants lists grants: GET, with optional query parameters user and client
	// (both: the grants of that user to that client; neither: every grant).
	PathGrants = "/admin/grants"
	// PathRevoke revokes grants: POST with a JSON RevokeRequest.
	PathRevoke = "/admin/revoke"
)

// Grant is one live grant: one user's authorization of one client, the family of
// every token issued from one login.
type Grant struct {
	ID        string    `json:"id"`
	UserID    string    `json:"user_id"`
	ClientID  string    `json:"client_id"`
	Scope     string    `json:"scope,omitempty"`
	Resource  []string  `json:"resource,omitempty"`
	AuthTime  time.Time `json:"auth_time"`
	ExpiresAt time.Time `json:"expires_at"`
}

// GrantList is the answer of GET PathGrants.
type GrantList struct {
	Grants []Grant `json:"grants"`
}

// RevokeRequest selects what to revoke: exactly one of UserID, ClientID or All.
type RevokeRequest struct {
	UserID   string `json:"user_id,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	// All revokes every grant of the server (the provider, the tenant).
	All bool `json:"all,omitempty"`
}

// RevokeResult is the answer of POST PathRevoke.
type RevokeResult struct {
	// Revoked is how many grants were revoked: their access and refresh tokens stop
	// working at once.
	Revoked int `json:"revoked"`
	// UpstreamTokensDeleted is how many users' upstream tokens were deleted from the
	// vault: the user's when revoking a user, every affected user's when revoking all.
	// Revoking a client keeps them, since the users' other clients still use them.
	UpstreamTokensDeleted int `json:"upstream_tokens_deleted"`
}

// Error is the body of every error answer.
type Error struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

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
	// PathClients lists the live dynamic registrations (RFC 7591): GET, answered
	// with a ClientList.
	PathClients = "/admin/clients"
	// PathClientCount counts them: GET, answered with a ClientCount. One cheap store
	// read, for the operator's status.
	PathClientCount = "/admin/clients/count"
	// PathApprovals lists the clients of approval mode (GET, optional query
	// parameter status: pending, approved or denied) and decides on one (POST with a
	// JSON ApprovalRequest).
	PathApprovals = "/admin/approvals"
)

// Client is one live dynamic registration.
type Client struct {
	ID           string   `json:"id"`
	Name         string   `json:"name,omitempty"`
	RedirectURIs []string `json:"redirect_uris"`
	// Source is the address the registration came from (an IPv6 client's /64).
	Source    string    `json:"source,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// LastUsedAt is when the client last obtained tokens, recorded at most once an
	// hour; absent when it never did.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// ExpiresAt is when the registration goes unless used again: idle removal, or
	// the registration's lapse.
	ExpiresAt time.Time `json:"expires_at"`
}

// ClientList is the answer of GET PathClients, oldest registration first.
type ClientList struct {
	Clients []Client `json:"clients"`
}

// ClientCount is the answer of GET PathClientCount.
type ClientCount struct {
	// Dynamic is how many dynamic registrations are live.
	Dynamic int `json:"dynamic"`
}

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

// Approval decisions of an ApprovalRequest.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// Approval is one client's approval record: a dynamic or metadata-document client
// that tried to log in while clientPolicy.requireApproval is on, or one an
// administrator decided on.
type Approval struct {
	ClientID string `json:"client_id"`
	// State is pending, approved or denied.
	Status string `json:"status"`
	// Kind is dynamic or metadata-document.
	Kind         string    `json:"kind,omitempty"`
	ClientName   string    `json:"client_name,omitempty"`
	RedirectURIs []string  `json:"redirect_uris,omitempty"`
	RequestedAt  time.Time `json:"requested_at,omitzero"`
	DecidedAt    time.Time `json:"decided_at,omitzero"`
	DecidedBy    string    `json:"decided_by,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// ApprovalList is the answer of GET PathApprovals.
type ApprovalList struct {
	Approvals []Approval `json:"approvals"`
}

// ApprovalRequest approves or denies one client: Decision is DecisionApprove or
// DecisionDeny. A metadata-document client (an https URL) may be decided on before
// it ever asks; a dynamic client must be registered or waiting.
type ApprovalRequest struct {
	ClientID string `json:"client_id"`
	Decision string `json:"decision"`
}

// ApprovalResult is the answer of POST PathApprovals.
type ApprovalResult struct {
	Approval Approval `json:"approval"`
	// Revoked is how many of the client's grants a denial revoked.
	Revoked int `json:"revoked"`
}

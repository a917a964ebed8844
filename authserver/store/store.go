// Package store defines where the authorization server keeps its state: registered
// clients, pending upstream authorizations, authorization codes, grants with their
// access and refresh tokens, and the users' upstream tokens.
//
// Two backends implement Store: memory (one replica, development) and redis
// (production: standalone, Sentinel or Cluster). Both pass the one conformance suite in
// storetest. Everything the server needs to be stateless lives here, so any replica can
// serve any step of a flow.
//
// The store never sees a secret in clear. Tokens, codes, upstream states and client
// secrets are high-entropy strings; the server passes their keyed hash (HMAC-SHA-256,
// hex) as the record's key or field, and upstream tokens arrive already encrypted. The
// store knows nothing of HTTP or OAuth wire formats.
//
// Every grant has an ID that the server embeds in the codes and tokens it hands out,
// so each call about a grant names it. On Redis all keys of one grant share the hash tag
// {g:ID}: redemption, rotation and revocation are each one script on one slot, also on
// Redis Cluster.
//
// Expiry: every record carries its own ExpiresAt (upstream tokens a TTL) and is never
// returned once that moment has passed; backends drop it then or soon after. A zero
// ExpiresAt is in the past, so such a record is stored dead: set it on every record.
//
// Replay: a redeemed code and a rotated refresh token leave a marker until their
// original ExpiresAt, so a second presentation is recognised (ErrCodeReused,
// ErrRefreshReused) and revokes the grant, also when it comes after the grant was
// revoked. A revoked grant is remembered until the last record it ever held would have
// expired, so nothing more is issued under its ID.
//
// Grace window: a rotation may leave, beside its replay marker and for a short window
// only, the token response it issued, sealed by the server (Successor). The same
// client presenting the rotated token again inside the window gets that response back
// instead of a revocation, so a client that refreshes twice in parallel (or retries a
// refresh whose answer it lost) keeps its session; concurrent rotations still rotate
// once. See RotateRefreshToken.
//
// Device authorizations (RFC 8628) live under a grant ID of their own, keyed by the
// device code's hash, with a user code index beside them; the user's approval is a
// code saved under the same hash, redeemed as codes are (DeviceAuthorizations).
//
// Leases: short exclusive claims by name (AcquireLease), so that one replica among
// many does a piece of work, such as refreshing a user's upstream token, while the
// others wait for its result.
package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// Sentinel errors. Backends wrap nothing else in these; callers use errors.Is.
var (
	// ErrNotFound: no such record, or it expired.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists: a record with this key exists (client IDs).
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrCodeReused: the authorization code was redeemed before. The store has revoked
	// the grant in the same atomic step (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
	ErrCodeReused = errors.New("store: authorization code reused")
	// ErrRefreshReused: a refresh token that was already rotated was presented again.
	// The store has revoked the whole grant in the same atomic step (OAuth 2.1 §4.3.1).
	ErrRefreshReused = errors.New("store: refresh token reused")
	// ErrGrantRevoked: the grant was revoked; nothing more may be issued under it.
	ErrGrantRevoked = errors.New("store: grant revoked")
	// ErrUnavailable wraps backend failures (connection refused, timeouts), so the
	// server can answer 503 temporarily_unavailable rather than 500.
	ErrUnavailable = errors.New("store: unavailable")
)

// Client is a registered OAuth client: dynamically registered (RFC 7591) or written by
// the operator. Static and metadata-document clients are not stored here.
type Client struct {
	ID string `json:"id"`
	// SecretHash is the HMAC of the client secret; empty for public clients.
	SecretHash              string   `json:"secret_hash,omitempty"`
	Name                    string   `json:"name,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope,omitempty"`
	ApplicationType         string   `json:"application_type,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	Trusted                 bool     `json:"trusted,omitempty"`
	// RegistrationTokenHash is the HMAC of the RFC 7592 registration access token.
	RegistrationTokenHash string    `json:"registration_token_hash,omitempty"`
	CreatedAt             time.Time `json:"created_at"`
	// Source is the address the registration came from (the server's per-source
	// key: an IPv4 address or an IPv6 /64). Registrations with a Source are counted
	// per source (CreateClientLimited); empty for clients written by other means.
	Source string `json:"source,omitempty"`
	// LastUsedAt is when the client last obtained tokens (TouchClient); zero: never.
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// ExpiresAt is when the backend drops the record. The server sets it to the
	// earlier of the registration's lapse (OAUTH_CLIENT_REGISTRATION_TTL after
	// CreatedAt) and the idle limit after the last use, and slides it forward with
	// TouchClient: an unused registration expires on its own, with no sweeper.
	ExpiresAt time.Time `json:"expires_at"`
}

// ClientUse records that a stored client used its registration: TouchClient sets the
// client's LastUsedAt and ExpiresAt to these.
type ClientUse struct {
	ClientID string
	// Source is the client's Source as read, so that the backend keeps its
	// per-source count in step without reading the record first.
	Source     string
	LastUsedAt time.Time
	ExpiresAt  time.Time
}

// ErrSourceLimit: the source already holds as many live registrations as allowed. The
// error CreateClientLimited returns is a *SourceLimitError, which errors.Is matches
// with ErrSourceLimit.
var ErrSourceLimit = errors.New("store: too many live registrations from this source")

// SourceLimitError is CreateClientLimited's refusal.
type SourceLimitError struct {
	// FreeAt is when the source's earliest registration expires, unless it is used
	// again before: the soonest a new one could fit.
	FreeAt time.Time
}

func (e *SourceLimitError) Error() string { return ErrSourceLimit.Error() }

// Is makes errors.Is(err, ErrSourceLimit) true.
func (e *SourceLimitError) Is(target error) bool { return target == ErrSourceLimit }

// PendingAuthorization is an MCP client's authorization request waiting for the user
// to come back from the upstream provider. It is keyed by the hash of the upstream
// `state` and taken exactly once.
type PendingAuthorization struct {
	ClientID            string   `json:"client_id"`
	RedirectURI         string   `json:"redirect_uri"`
	State               string   `json:"state,omitempty"` // the MCP client's own state
	Scope               string   `json:"scope,omitempty"`
	CodeChallenge       string   `json:"code_challenge"`
	CodeChallengeMethod string   `json:"code_challenge_method"`
	Resource            []string `json:"resource,omitempty"` // RFC 8707
	// Device names the RFC 8628 device authorization this login approves, when the
	// user came from the device verification page rather than an MCP client's
	// redirect (RedirectURI is empty then).
	Device *DeviceRef `json:"device,omitempty"`
	// DeviceExpiresAt is when that device authorization expires: its approval must
	// not outlive it.
	DeviceExpiresAt time.Time `json:"device_expires_at,omitzero"`
	// DeviceUserCode is the hash of the user code the user entered, so that a login
	// that could not finish (the upstream or a membership check did not answer) gives
	// it back for another try.
	DeviceUserCode string `json:"device_user_code,omitempty"`
	// UpstreamVerifier is the PKCE verifier we sent upstream (kept server-side).
	UpstreamVerifier string `json:"upstream_verifier,omitempty"`
	// Nonce is the OIDC nonce sent upstream.
	Nonce string `json:"nonce,omitempty"`
	// UpstreamScope is the scope the upstream authorization request asked for when it
	// was not the provider's default: a step-up to a scope with upstream scopes.
	UpstreamScope string `json:"upstream_scope,omitempty"`
	// StepUpUser is the user whose stored upstream token an incremental authorization
	// adds to (asking for only what that token lacks); empty for a full one.
	StepUpUser string `json:"step_up_user,omitempty"`
	// BrowserBinding is the hash of a cookie set on the user agent that started the
	// flow; the callback must present the same cookie (RFC 9700 §4.7).
	BrowserBinding string    `json:"browser_binding,omitempty"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// AuthorizationCode is our code, bound to everything the token request must match.
type AuthorizationCode struct {
	ClientID            string    `json:"client_id"`
	RedirectURI         string    `json:"redirect_uri"`
	Scope               string    `json:"scope,omitempty"`
	CodeChallenge       string    `json:"code_challenge"`
	CodeChallengeMethod string    `json:"code_challenge_method"`
	Resource            []string  `json:"resource,omitempty"`
	UserID              string    `json:"user_id"`
	AuthTime            time.Time `json:"auth_time"`
	ExpiresAt           time.Time `json:"expires_at"`
}

// Grant is one user's authorization of one client: the family that every token issued
// from one authorization code belongs to. Revoking it revokes them all.
type Grant struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	UserID    string    `json:"user_id"`
	Scope     string    `json:"scope,omitempty"`
	Resource  []string  `json:"resource,omitempty"`
	AuthTime  time.Time `json:"auth_time"`
	ExpiresAt time.Time `json:"expires_at"` // the refresh token's horizon
}

// Token is an access or refresh token record; the key is the token's hash.
type Token struct {
	GrantID   string    `json:"grant_id"`
	ClientID  string    `json:"client_id"`
	UserID    string    `json:"user_id"`
	Scope     string    `json:"scope,omitempty"`
	Resource  []string  `json:"resource,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TokenPair is what one redemption or rotation issues: always an access token, a
// refresh token when RefreshHash is set.
type TokenPair struct {
	AccessHash  string
	Access      Token
	RefreshHash string
	Refresh     Token
	// ClientUse, when set, is written in the same round trip as the redemption,
	// issue or rotation, as TouchClient would (see Grants).
	ClientUse *ClientUse
}

// Successor is what a rotation keeps beside the retired refresh token's replay marker
// for the reuse grace window: the token response the rotation issued, sealed by the
// server (AES-GCM) before it reaches the store, so the store never holds a token in
// clear.
type Successor struct {
	// ClientID is the client the rotation was for; only the same client gets Sealed
	// back.
	ClientID string
	// Sealed is the encrypted token response.
	Sealed []byte
	// Until ends the window: after it the successor is gone and reuse revokes.
	Until time.Time
}

// UpstreamToken is a user's token at the upstream provider, encrypted by the server
// (AES-GCM) before it reaches the store.
type UpstreamToken struct {
	Ciphertext []byte `json:"ciphertext"`
	// AccessExpiresAt is when the upstream access token expires (zero: unknown), so the
	// server knows to refresh it without decrypting.
	AccessExpiresAt time.Time `json:"access_expires_at,omitempty"`
	UpdatedAt       time.Time `json:"updated_at"`
	// ReloginRequired marks a user whose upstream refresh token the upstream refused
	// for good (revoked upstream): Ciphertext is empty, the token is gone, and the
	// server revokes every grant of the user that finds this record, until a new
	// login replaces it.
	ReloginRequired bool `json:"relogin_required,omitempty"`
}

// DefaultRevocationRetention is how long a backend keeps revocation feed entries
// unless told otherwise: the default access-token lifetime plus a minute. After that
// every token an entry could concern has expired.
const DefaultRevocationRetention = 16 * time.Minute

// Revocation is one entry of the revocation feed: a whole grant (TokenID empty) or one
// JWT access token of it (TokenID is its jti), revoked at At.
type Revocation struct {
	GrantID string
	TokenID string
	At      time.Time
}

// RevocationFeed records revocations for resource servers that verify JWT access
// tokens without asking the server. Backends record every grant revocation in it
// themselves; RevokeTokenID adds single tokens.
//
// Entries are kept at least the backend's retention (DefaultRevocationRetention unless
// configured), which the server sets to the access-token lifetime plus a minute, and
// may be kept longer. Revoking the same grant or jti again records it again with a
// later At, so an entry may appear once or several times; readers treat entries
// idempotently.
type RevocationFeed interface {
	// Revocations returns the retained entries with At at or after since, oldest
	// first. A zero since returns every retained entry. At comes from one clock per
	// backend (on Redis, the Redis server's), so a reader that passes the latest At it
	// saw misses nothing recorded later.
	Revocations(ctx context.Context, since time.Time) ([]Revocation, error)
	// RevokeTokenID marks the access token jti of grantID revoked until until (its
	// expiry) and records it in the feed. Nothing is recorded once until has passed.
	RevokeTokenID(ctx context.Context, grantID, jti string, until time.Time) error
	// TokenIDRevoked reports whether RevokeTokenID marked jti of grantID and the mark
	// has not expired.
	TokenIDRevoked(ctx context.Context, grantID, jti string) (bool, error)
}

// DeviceAuthorization is an RFC 8628 device authorization request waiting for its
// user: what the device asked for. The device code's hash keys it under a grant ID of
// its own, which the device code embeds, as codes do.
type DeviceAuthorization struct {
	ClientID  string    `json:"client_id"`
	Scope     string    `json:"scope,omitempty"`
	Resource  []string  `json:"resource,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// DeviceRef names a device authorization: its grant and the hash of its device code.
type DeviceRef struct {
	GrantID    string `json:"grant_id"`
	DeviceHash string `json:"device_hash"`
}

// DevicePollStatus is what a poll of a device authorization found.
type DevicePollStatus int

// Poll answers (RFC 8628 §3.5).
const (
	// DevicePending: the user has not decided yet.
	DevicePending DevicePollStatus = iota
	// DeviceSlowDown: pending, and the device polled faster than its interval, which
	// the store has now lengthened by DeviceSlowDownStep.
	DeviceSlowDown
	// DeviceApproved: the user approved; the approval is the code stored under the
	// device code's hash (SaveCode), which the caller redeems.
	DeviceApproved
	// DeviceDenied: the user (or the access rules) refused.
	DeviceDenied
)

// DeviceSlowDownStep is how much each slow_down lengthens a device's polling interval
// (RFC 8628 §3.5: "the interval MUST be increased by 5 seconds for this and all
// subsequent requests").
const DeviceSlowDownStep = 5 * time.Second

// DevicePoll is a poll's answer: the status and the interval the device must now keep.
type DevicePoll struct {
	Status   DevicePollStatus
	Interval time.Duration
	Device   DeviceAuthorization
}

// DeviceAuthorizations keeps RFC 8628 device authorizations. The user's approval is an
// AuthorizationCode saved under the device's grant ID and device code hash (SaveCode,
// SaveLogin), so redemption, replay detection and revocation are those of codes.
type DeviceAuthorizations interface {
	// SaveDevice stores d under ref with the polling interval, and indexes it by
	// userCodeHash until d.ExpiresAt. ErrAlreadyExists if a live device authorization
	// already holds that user code (nothing is stored then).
	SaveDevice(ctx context.Context, ref DeviceRef, userCodeHash string, d DeviceAuthorization, interval time.Duration) error
	// GetUserCode finds the live device authorization a user code names, without
	// spending the user code; ErrNotFound if none (unknown, expired or taken).
	GetUserCode(ctx context.Context, userCodeHash string) (DeviceRef, DeviceAuthorization, error)
	// TakeUserCode is GetUserCode that spends the user code in the same atomic step,
	// so one browser alone goes on to approve or deny.
	TakeUserCode(ctx context.Context, userCodeHash string) (DeviceRef, DeviceAuthorization, error)
	// ReturnUserCode gives back a user code TakeUserCode spent, naming ref again until
	// expiresAt (its device authorization's expiry): the approval it started could not
	// finish, and the user may try again. Nothing is stored when expiresAt has passed;
	// ErrAlreadyExists if the code is live already.
	ReturnUserCode(ctx context.Context, userCodeHash string, ref DeviceRef, expiresAt time.Time) error
	// DenyDevice records the user's refusal; idempotent; ErrNotFound if the device
	// authorization is gone.
	DenyDevice(ctx context.Context, ref DeviceRef) error
	// PollDevice is one poll by the device, atomic: ErrNotFound for an unknown or
	// expired device authorization; otherwise the status, with the poll's time kept
	// so the next poll can be told it came too soon (DeviceSlowDown). A device that
	// polls after its approval was redeemed gets DeviceApproved: the code's
	// redemption answers ErrCodeReused then.
	PollDevice(ctx context.Context, ref DeviceRef) (DevicePoll, error)
}

// Clients keeps registered clients.
type Clients interface {
	CreateClient(ctx context.Context, c Client) error // ErrAlreadyExists
	GetClient(ctx context.Context, id string) (Client, error)
	// UpdateClient replaces a live registration, ExpiresAt included; ErrNotFound if
	// there is none.
	UpdateClient(ctx context.Context, c Client) error
	// DeleteClient removes a registration; idempotent.
	DeleteClient(ctx context.Context, id string) error
	// CountClients returns how many registrations are live (for status and metrics).
	CountClients(ctx context.Context) (int, error)
	// CreateClientLimited is CreateClient for a registration from c.Source: in the
	// same atomic step it counts the source's live registrations and, when there are
	// limit or more, stores nothing and returns a *SourceLimitError. A limit <= 0 or
	// an empty Source is CreateClient. Every replica sharing the backend shares the
	// count.
	CreateClientLimited(ctx context.Context, c Client, limit int) error
	// TouchClient sets the live registration's LastUsedAt and ExpiresAt (which also
	// moves when the backend drops it, and where the per-source count sees it) and
	// changes nothing else, so it never undoes a concurrent UpdateClient.
	// ErrNotFound if there is no live registration.
	TouchClient(ctx context.Context, u ClientUse) error
	// ListClients returns every live registration, oldest CreatedAt first, then by ID.
	ListClients(ctx context.Context) ([]Client, error)
}

// ApprovalStatus is an administrator's decision about a client in approval mode.
type ApprovalStatus string

// Approval statuses.
const (
	// ApprovalPending: the client tried to log in and waits for an administrator.
	ApprovalPending ApprovalStatus = "pending"
	// ApprovalApproved: the client may complete logins.
	ApprovalApproved ApprovalStatus = "approved"
	// ApprovalDenied: the client may not; its logins end at an error page.
	ApprovalDenied ApprovalStatus = "denied"
)

// ClientApproval is the approval-mode record of one dynamic or metadata-document
// client, keyed by client ID. It lives apart from Client because metadata-document
// clients have no registration to hold it.
type ClientApproval struct {
	ClientID string         `json:"client_id"`
	Status   ApprovalStatus `json:"status"`
	// Kind is where the client comes from ("dynamic", "metadata-document"), and Name
	// and RedirectURIs what it said about itself: what an administrator decides on.
	Kind         string   `json:"kind,omitempty"`
	Name         string   `json:"name,omitempty"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	// RequestedAt is the client's first login attempt; DecidedAt and DecidedBy say
	// when and by whom (the admin API, an MCPClient) it was approved or denied.
	RequestedAt time.Time `json:"requested_at"`
	DecidedAt   time.Time `json:"decided_at,omitzero"`
	DecidedBy   string    `json:"decided_by,omitempty"`
	// ExpiresAt ends the record; a pending request is kept shorter than a decision.
	ExpiresAt time.Time `json:"expires_at"`
}

// ClientApprovals keeps approval-mode decisions.
type ClientApprovals interface {
	// RequestApproval stores a (normally pending) unless a live record for a.ClientID
	// exists, and returns the record stored now: the existing one or a. Of concurrent
	// requests for one client, one stores its record and all return it.
	RequestApproval(ctx context.Context, a ClientApproval) (ClientApproval, error)
	// GetApproval returns the client's record; ErrNotFound if there is none.
	GetApproval(ctx context.Context, clientID string) (ClientApproval, error)
	// SetApproval stores a, replacing any record of the client (a decision).
	SetApproval(ctx context.Context, a ClientApproval) error
	// ListApprovals returns the live records with status (every status when empty),
	// oldest RequestedAt first, then by client ID.
	ListApprovals(ctx context.Context, status ApprovalStatus) ([]ClientApproval, error)
	// DeleteApproval removes the client's record; idempotent.
	DeleteApproval(ctx context.Context, clientID string) error
}

// SortApprovals orders approvals as ListApprovals returns them.
func SortApprovals(as []ClientApproval) {
	slices.SortFunc(as, func(a, b ClientApproval) int {
		if c := a.RequestedAt.Compare(b.RequestedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ClientID, b.ClientID)
	})
}

// PendingAuthorizations keeps authorization requests waiting for the upstream.
type PendingAuthorizations interface {
	// SavePending stores p, replacing any record under stateHash.
	SavePending(ctx context.Context, stateHash string, p PendingAuthorization) error
	// TakePending returns and deletes the record in one atomic step, so an upstream
	// state can be redeemed once; ErrNotFound after that.
	TakePending(ctx context.Context, stateHash string) (PendingAuthorization, error)
}

// Grants keeps codes, grants and tokens. Each method is one atomic step (one script on
// Redis) on the keys of a single grant. A hash is found only under the grant it was
// stored with: the same hash under another grant ID is ErrNotFound.
//
// RedeemCode, RotateRefreshToken and IssueGrant apply the TokenPair's ClientUse, when
// set, in the same round trip (on Redis, the same pipeline) but not the same atomic
// step: it is applied whatever the step answers, and its own failure (the client was
// deleted, say) is not reported, since the next use records it again.
//
// Grant IDs must not contain '{' or '}' (they form the Redis Cluster hash tag).
type Grants interface {
	// SaveCode stores a new code under a new grant ID. ErrAlreadyExists if codeHash is
	// already there (live or redeemed); ErrGrantRevoked if the grant was revoked.
	SaveCode(ctx context.Context, grantID, codeHash string, c AuthorizationCode) error
	// RedeemCode consumes the code and stores the grant and its first tokens atomically.
	// A second redemption of the same code returns ErrCodeReused and revokes the grant
	// (its tokens stop working). An unknown or expired code returns ErrNotFound; a code
	// whose grant was revoked before redemption, ErrGrantRevoked. The caller validates
	// the code (client, redirect URI, PKCE) with PeekCode first.
	//
	// Of concurrent redemptions of one code exactly one succeeds; the others are
	// replays, so they return ErrCodeReused and the grant ends revoked.
	RedeemCode(ctx context.Context, grantID, codeHash string, g Grant, tokens TokenPair) error
	// PeekCode reads a code without consuming it. ErrCodeReused if already redeemed;
	// ErrNotFound if unknown, expired or revoked.
	PeekCode(ctx context.Context, grantID, codeHash string) (AuthorizationCode, error)
	// GetAccessToken is the introspection lookup: one round trip. ErrNotFound if
	// unknown, expired or revoked.
	GetAccessToken(ctx context.Context, grantID, tokenHash string) (Token, error)
	// GetRefreshToken reads a current refresh token. A rotated one returns
	// ErrRefreshReused without revoking or deciding anything: RotateRefreshToken
	// decides between the grace window and revocation. An unknown, expired or revoked
	// one returns ErrNotFound.
	GetRefreshToken(ctx context.Context, grantID, tokenHash string) (Token, error)
	// RotateRefreshToken retires oldHash and stores next atomically, and keeps succ
	// beside oldHash's replay marker until succ.Until, no longer (a zero or past Until,
	// or an empty succ.Sealed, keeps nothing: no grace window). It returns (nil, nil)
	// when it rotated. The access token issued with oldHash stays valid until it
	// expires. next.RefreshHash may be empty (no new refresh token).
	//
	// Presenting an already-rotated token again (OAuth 2.1 §4.3.1 reuse):
	//   - inside the window its rotation left, by the same client (succ.ClientID equals
	//     the kept Successor's ClientID, not empty), while the grant is not revoked: it
	//     returns the kept Successor's Sealed bytes and a nil error. Nothing is stored
	//     (next is discarded) and nothing is revoked: the caller answers with the
	//     successor it opens.
	//   - otherwise (no window, after it, another client, a revoked grant): it revokes
	//     the grant and returns ErrRefreshReused.
	// A token that is unknown or expired returns ErrNotFound; a current token of a
	// revoked grant, ErrGrantRevoked.
	//
	// next may be the zero TokenPair when the caller's read already answered
	// ErrRefreshReused and it has nothing to issue: the call then only settles the
	// reuse as above. A zero next with a current oldHash changes nothing and returns
	// an error that is none of the sentinels (it cannot happen: markers never turn
	// back into tokens).
	//
	// Of concurrent rotations of one token exactly one rotates. The others are reuse:
	// inside the winner's window and from the same client they get the winner's
	// successor back, and the grant lives on; without a window they return
	// ErrRefreshReused and the grant ends revoked, the winner's new tokens included
	// (OAuth 2.1 §4.3.1: the server cannot tell which party is the legitimate client).
	RotateRefreshToken(ctx context.Context, grantID, oldHash string, next TokenPair, succ Successor) (prior []byte, err error)
	// GetGrant returns the grant; ErrNotFound if unknown, expired or revoked.
	GetGrant(ctx context.Context, grantID string) (Grant, error)
	// RevokeGrant deletes the grant, its unredeemed code, every token of it and every
	// Successor its rotations kept, and remembers the revocation (see the package doc);
	// idempotent, and a no-op for an unknown grant.
	RevokeGrant(ctx context.Context, grantID string) error
	// RevokeAccessToken deletes one access token; idempotent.
	RevokeAccessToken(ctx context.Context, grantID, tokenHash string) error
	// IssueGrant stores a new grant with its first tokens without a code (the
	// client_credentials grant), indexed as RedeemCode indexes (not by user when
	// UserID is empty). ErrAlreadyExists if anything is stored under g.ID already;
	// ErrGrantRevoked if it was revoked.
	IssueGrant(ctx context.Context, g Grant, tokens TokenPair) error
}

// GrantFilter selects grants for ListGrants. Empty fields match everything: the zero
// filter selects every grant of the tenant.
type GrantFilter struct {
	UserID   string
	ClientID string
}

// GrantIndex finds a tenant's grants by user and by client, so that an operator can
// revoke everything of one user, one client or the whole tenant at once.
type GrantIndex interface {
	// ListGrants returns the live grants (redeemed, neither expired nor revoked) that
	// match f, oldest AuthTime first. A grant whose code is redeemed while the list is
	// read may be missed; list again to catch it. Backends index a grant when its code
	// is redeemed (RedeemCode fails rather than hand out a grant it could not index)
	// and drop index entries of grants that are gone when they meet them, so the
	// indexes never outgrow the live grants by more than what expired or was revoked
	// since the last read.
	ListGrants(ctx context.Context, f GrantFilter) ([]Grant, error)
}

// UpstreamTokens keeps each user's upstream tokens, keyed by user ID.
type UpstreamTokens interface {
	// PutUpstreamToken stores t for ttl (OAUTH_EXTERNAL_TOKEN_TTL), replacing any
	// previous one; a ttl <= 0 stores nothing that can be read back.
	PutUpstreamToken(ctx context.Context, userID string, t UpstreamToken, ttl time.Duration) error
	GetUpstreamToken(ctx context.Context, userID string) (UpstreamToken, error)
	// DeleteUpstreamToken removes the user's token; idempotent.
	DeleteUpstreamToken(ctx context.Context, userID string) error
}

// Leases are short exclusive claims by name, shared by every store on the same backend
// and tenant (every replica), so that one caller does a piece of work while the others
// wait for its result. A lease is held by the Store value that took it: a replica's
// ReleaseLease never frees another replica's lease. Callers keep their work shorter
// than the ttl they asked for; a holder that dies loses the lease when ttl passes.
type Leases interface {
	// AcquireLease takes the lease name for ttl if nobody holds it, and reports whether
	// it did. It is not reentrant: a holder asking again gets false. A ttl <= 0 takes
	// nothing and returns false.
	AcquireLease(ctx context.Context, name string, ttl time.Duration) (bool, error)
	// ReleaseLease gives back the lease name if this Store value holds it; a lease it
	// does not hold (never taken, expired, taken by another since) is left alone.
	// Idempotent.
	ReleaseLease(ctx context.Context, name string) error
}

// Store is everything the authorization server keeps. Implementations are safe for
// concurrent use and prefix every key with their tenant.
type Store interface {
	Clients
	ClientApprovals
	PendingAuthorizations
	Grants
	GrantIndex
	DeviceAuthorizations
	UpstreamTokens
	Leases
	RevocationFeed
	// Ping reports whether the backend is reachable and safe to use (for /readyz):
	// on Redis it also refuses an eviction policy other than noeviction.
	Ping(ctx context.Context) error
	Close() error
}

// TokenRequestKeys name what a token request reads: its client and the code or the
// refresh token it presents (set CodeHash or RefreshHash, with GrantID).
type TokenRequestKeys struct {
	ClientID    string
	GrantID     string
	CodeHash    string
	RefreshHash string
}

// TokenRequestRecords are the answers to TokenRequestKeys, each with the error its own
// call would have returned (GetClient, PeekCode, GetRefreshToken). A record that was
// not asked for is zero with a nil error. Like GetRefreshToken, RefreshErr
// ErrRefreshReused decides nothing: the caller settles the reuse with
// RotateRefreshToken, which may answer with the successor kept for the grace window.
type TokenRequestRecords struct {
	Client     Client
	ClientErr  error
	Code       AuthorizationCode
	CodeErr    error
	Refresh    Token
	RefreshErr error
}

// TokenRequestReader is implemented by backends that read a token request's records
// in one round trip (Redis pipelines the reads), so that a token request costs two
// round trips, this read and the grant's script, rather than three.
type TokenRequestReader interface {
	ReadTokenRequest(ctx context.Context, k TokenRequestKeys) TokenRequestRecords
}

// ReadTokenRequest reads what k names from s: in one round trip when s is a
// TokenRequestReader, otherwise with one call per record.
func ReadTokenRequest(ctx context.Context, s Store, k TokenRequestKeys) TokenRequestRecords {
	if r, ok := s.(TokenRequestReader); ok {
		return r.ReadTokenRequest(ctx, k)
	}
	var out TokenRequestRecords
	out.Client, out.ClientErr = s.GetClient(ctx, k.ClientID)
	if k.CodeHash != "" {
		out.Code, out.CodeErr = s.PeekCode(ctx, k.GrantID, k.CodeHash)
	}
	if k.RefreshHash != "" {
		out.Refresh, out.RefreshErr = s.GetRefreshToken(ctx, k.GrantID, k.RefreshHash)
	}
	return out
}

// Login is what the server stores when a user comes back from the upstream provider:
// the user's upstream token and our authorization code (see SaveLogin).
type Login struct {
	UserID      string
	Upstream    UpstreamToken
	UpstreamTTL time.Duration
	GrantID     string
	CodeHash    string
	Code        AuthorizationCode
}

// LoginWriter is implemented by backends that store a Login in one round trip (Redis
// pipelines the two writes).
type LoginWriter interface {
	SaveLogin(ctx context.Context, l Login) error
}

// SaveLogin stores l: PutUpstreamToken, then SaveCode, with their errors; in one round
// trip when s is a LoginWriter. Both writes are attempted there, so a failure may
// leave the upstream token stored without the code, as a failed SaveCode does after
// PutUpstreamToken.
func SaveLogin(ctx context.Context, s Store, l Login) error {
	if w, ok := s.(LoginWriter); ok {
		return w.SaveLogin(ctx, l)
	}
	if err := s.PutUpstreamToken(ctx, l.UserID, l.Upstream, l.UpstreamTTL); err != nil {
		return err
	}
	return s.SaveCode(ctx, l.GrantID, l.CodeHash, l.Code)
}

// SortGrants orders grants as ListGrants returns them: oldest AuthTime first, then by
// ID, so that a list reads the same from either backend.
func SortGrants(gs []Grant) {
	slices.SortFunc(gs, func(a, b Grant) int {
		if c := a.AuthTime.Compare(b.AuthTime); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// SortClients orders clients as ListClients returns them: oldest CreatedAt first, then
// by ID.
func SortClients(cs []Client) {
	slices.SortFunc(cs, func(a, b Client) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Package upstream is the login leg of the authorization server: it sends the user to
// an upstream identity provider (GitHub, Google, any OIDC issuer, any OAuth 2.0 server),
// exchanges the code that comes back, refreshes the upstream token, and reads who the
// user is. It keeps no state of ours: the caller stores what a flow needs.
//
// New builds a Provider from a Config: a preset (github, google, linkedin, slack,
// dropbox) or a generic kind (oidc, oauth2). NewAuthParams makes the per-flow PKCE
// verifier and nonce. The github provider is also a MembershipReader: it reads the
// user's organizations and teams with their token, for access rules. Package
// upstreamtest is a fake IdP, and a fake GitHub, for tests.
package upstream

import (
	"context"
	"errors"
	"time"
)

// Provider is one upstream identity provider. Implementations are safe for concurrent
// use.
type Provider interface {
	// Name is the provider's type as configured ("github", "oidc", ...).
	Name() string
	// AuthCodeURL returns where to send the user. verifier is the upstream PKCE verifier
	// (sent as an S256 challenge when the provider supports PKCE); nonce is set for OIDC.
	AuthCodeURL(state string, p AuthParams) string
	// Exchange trades the upstream code for tokens and reads the user's identity.
	Exchange(ctx context.Context, code string, p AuthParams) (*Token, *Identity, error)
	// Refresh trades an upstream refresh token for a new token. ErrNoRefresh when the
	// provider issues none or the token was refused (the user must log in again).
	Refresh(ctx context.Context, refreshToken string) (*Token, error)
	// SupportsPKCE says whether AuthCodeURL sends a code challenge.
	SupportsPKCE() bool
}

// AuthParams are the per-flow values the caller keeps between AuthCodeURL and Exchange.
type AuthParams struct {
	Verifier string
	Nonce    string
	// Scopes, when set, are asked for instead of the configured ones: an incremental
	// authorization asks for only what the user's upstream token lacks. An OIDC
	// provider adds openid, without which no ID token says who the user is.
	Scopes []string
}

// Scoper is implemented by providers that say which upstream scopes they ask for by
// default (every Provider of this package does).
type Scoper interface {
	Scopes() []string
}

// Token is what the upstream issued.
type Token struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitempty"` // zero: does not expire / unknown
	IDToken      string    `json:"id_token,omitempty"`
	Scope        string    `json:"scope,omitempty"`
}

// Identity is who the user is at the upstream. Claims holds every claim read (for OIDC,
// the ID token's over userinfo's); numbers in it are json.Number, so ids keep all digits.
type Identity struct {
	// Subject is the stable user identifier (the configured user-info field).
	Subject string         `json:"sub"`
	Email   string         `json:"email,omitempty"`
	Name    string         `json:"name,omitempty"`
	Groups  []string       `json:"groups,omitempty"`
	Claims  map[string]any `json:"claims,omitempty"`
}

// Errors a Provider returns; wrap with context, test with errors.Is.
var (
	// ErrNoRefresh: there is no usable upstream refresh token.
	ErrNoRefresh = errors.New("upstream: cannot refresh")
	// ErrExchange: the upstream refused the code or answered badly.
	ErrExchange = errors.New("upstream: code exchange failed")
	// ErrIdentity: the user's identity could not be read or verified.
	ErrIdentity = errors.New("upstream: identity unavailable")
)

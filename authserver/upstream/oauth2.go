package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// core is the OAuth 2.0 part every provider shares: the authorization URL, the code
// exchange and refresh, all on golang.org/x/oauth2. The OIDC provider adds ID token
// verification on top of it.
type core struct {
	name             Type
	cfg              *oauth2.Config
	client           *http.Client
	pkce             bool
	authParams       map[string]string
	deadRefreshCodes []string
	// commaScopes: the token response lists scopes separated by commas (GitHub).
	commaScopes bool
}

func newCore(s settings, authURL, tokenURL string, style oauth2.AuthStyle, pkce bool) core {
	return core{
		name:             s.typ,
		cfg:              s.oauth2Config(authURL, tokenURL, style),
		client:           s.client,
		pkce:             pkce,
		authParams:       s.p.authParams,
		deadRefreshCodes: append([]string{"invalid_grant"}, s.p.deadRefreshCodes...),
		commaScopes:      s.p.commaScopes,
	}
}

// Name implements Provider.
func (c *core) Name() string { return string(c.name) }

// Scopes implements Scoper: the configured scopes, or the preset's.
func (c *core) Scopes() []string { return slices.Clone(c.cfg.Scopes) }

// SupportsPKCE implements Provider.
func (c *core) SupportsPKCE() bool { return c.pkce }

// withClient puts our client where x/oauth2 and go-oidc look for one.
func (c *core) withClient(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.client)
}

func (c *core) authCodeURL(state string, p AuthParams, extra ...oauth2.AuthCodeOption) string {
	opts := make([]oauth2.AuthCodeOption, 0, len(c.authParams)+len(extra)+1)
	for k, v := range c.authParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	// Without a verifier there is nothing to derive a challenge from; the caller must
	// pass one whenever SupportsPKCE says so (NewAuthParams does).
	if c.pkce && p.Verifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(p.Verifier))
	}
	if len(p.Scopes) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("scope", strings.Join(p.Scopes, " ")))
	}
	opts = append(opts, extra...)
	return c.cfg.AuthCodeURL(state, opts...)
}

func (c *core) exchange(ctx context.Context, code string, p AuthParams) (*oauth2.Token, error) {
	var opts []oauth2.AuthCodeOption
	// A verifier without a challenge in the authorization request is refused by
	// OAuth 2.1 servers, so send it only when AuthCodeURL sent the challenge.
	if c.pkce && p.Verifier != "" {
		opts = append(opts, oauth2.VerifierOption(p.Verifier))
	}
	tok, err := c.cfg.Exchange(c.withClient(ctx), code, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w (%s): %w", ErrExchange, c.name, err)
	}
	return tok, nil
}

// Refresh implements Provider. The returned token carries the refresh token to keep:
// the rotated one when the upstream rotates, the same one when it does not. Errors other
// than ErrNoRefresh (network, 5xx, bad client credentials) are worth retrying later:
// sending the user back to log in would not fix them.
func (c *core) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	if refreshToken == "" {
		return nil, fmt.Errorf("%w (%s): no refresh token was issued", ErrNoRefresh, c.name)
	}
	// An already expired token with no access token makes the token source go
	// straight to the refresh grant.
	expired := &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}
	tok, err := c.cfg.TokenSource(c.withClient(ctx), expired).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && slices.Contains(c.deadRefreshCodes, re.ErrorCode) {
			return nil, fmt.Errorf("%w (%s): %w", ErrNoRefresh, c.name, err)
		}
		return nil, fmt.Errorf("upstream %s: refresh: %w", c.name, err)
	}
	return c.tokenFrom(tok), nil
}

// tokenFrom converts x/oauth2's token to ours, its scope space-separated (RFC 6749
// §3.3) whatever the provider sent.
func (c *core) tokenFrom(t *oauth2.Token) *Token {
	out := &Token{
		AccessToken:  t.AccessToken,
		TokenType:    t.Type(),
		RefreshToken: t.RefreshToken,
		Expiry:       t.Expiry,
	}
	out.IDToken, _ = t.Extra("id_token").(string)
	out.Scope, _ = t.Extra("scope").(string)
	if c.commaScopes {
		out.Scope = strings.Join(strings.FieldsFunc(out.Scope, func(r rune) bool { return r == ',' || r == ' ' }), " ")
	}
	return out
}

// oauth2Provider is a plain OAuth 2.0 server: who the user is comes from a user-info
// endpoint that takes the access token.
type oauth2Provider struct {
	core
	s settings
}

var _ Provider = (*oauth2Provider)(nil)

func newOAuth2Provider(_ context.Context, s settings) (Provider, error) {
	return &oauth2Provider{
		core: newCore(s, s.authURL, s.tokenURL, s.p.authStyle, s.pkce != PKCENever),
		s:    s,
	}, nil
}

// AuthCodeURL implements Provider.
func (p *oauth2Provider) AuthCodeURL(state string, ap AuthParams) string {
	return p.authCodeURL(state, ap)
}

// Exchange implements Provider.
func (p *oauth2Provider) Exchange(ctx context.Context, code string, ap AuthParams) (*Token, *Identity, error) {
	tok, err := p.exchange(ctx, code, ap)
	if err != nil {
		return nil, nil, err
	}
	claims, err := userInfo(ctx, p.s, tok.AccessToken)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s): %w", ErrIdentity, p.name, err)
	}
	id, err := identityFrom(claims, p.s.mapping)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s): %w", ErrIdentity, p.name, err)
	}
	return p.tokenFrom(tok), id, nil
}

// userInfo reads and decodes the user-info endpoint of s, with the preset's additions.
func userInfo(ctx context.Context, s settings, accessToken string) (map[string]any, error) {
	method := http.MethodGet
	if s.p.userInfoPOST {
		method = http.MethodPost
	}
	body, _, err := fetch(ctx, s.client, method, s.userInfoURL, accessToken)
	if err != nil {
		return nil, fmt.Errorf("read user info: %w", err)
	}
	claims, err := decodeClaims(body)
	if err != nil {
		return nil, fmt.Errorf("read user info: %w", err)
	}
	if s.p.enrich != nil {
		if err := s.p.enrich(ctx, s, accessToken, claims); err != nil {
			return nil, err
		}
	}
	return claims, nil
}

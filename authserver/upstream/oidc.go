package upstream

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcProvider is an OpenID Connect issuer: the user is who the verified ID token says,
// completed by the userinfo endpoint when the issuer has one.
type oidcProvider struct {
	core
	s        settings
	verifier *oidc.IDTokenVerifier
}

var _ Provider = (*oidcProvider)(nil)

// discoveryMetadata are the discovery fields go-oidc does not expose itself.
type discoveryMetadata struct {
	CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
	TokenAuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
}

func newOIDCProvider(ctx context.Context, s settings) (Provider, error) {
	fail := func(err error) (Provider, error) {
		return nil, fmt.Errorf("oidc discovery for %s: %w", s.issuer, err)
	}
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, s.client), s.issuer)
	if err != nil {
		return fail(err)
	}
	var meta discoveryMetadata
	if err := op.Claims(&meta); err != nil {
		return fail(err)
	}
	ep := op.Endpoint()
	authURL, tokenURL := or(s.authURL, ep.AuthURL), or(s.tokenURL, ep.TokenURL)
	if authURL == "" || tokenURL == "" {
		return fail(errors.New("the document names no authorization_endpoint or token_endpoint"))
	}
	s.userInfoURL = or(s.userInfoURL, op.UserInfoEndpoint())
	if !slices.Contains(s.scopes, oidc.ScopeOpenID) {
		s.scopes = append([]string{oidc.ScopeOpenID}, s.scopes...)
	}

	pkce := s.pkce == PKCEAlways ||
		(s.pkce == PKCEAuto && slices.Contains(meta.CodeChallengeMethods, "S256"))
	style := s.p.authStyle
	if style == oauth2.AuthStyleAutoDetect {
		style = authStyleFor(meta.TokenAuthMethods)
	}
	// The key set fetches with our client, and lives as long as the provider, not ctx.
	keyCtx := oidc.ClientContext(context.Background(), s.client)
	return &oidcProvider{
		core:     newCore(s, authURL, tokenURL, style, pkce),
		s:        s,
		verifier: op.VerifierContext(keyCtx, &oidc.Config{ClientID: s.clientID}),
	}, nil
}

// authStyleFor picks how to send client credentials from what discovery lists, so the
// first token request is the right one (x/oauth2's probing costs a failed request and
// leaves an error in the upstream's logs). Nothing listed: probe.
func authStyleFor(methods []string) oauth2.AuthStyle {
	switch {
	case slices.Contains(methods, "client_secret_basic"):
		return oauth2.AuthStyleInHeader
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleAutoDetect
}

// AuthCodeURL implements Provider; it adds the nonce the ID token must carry back.
func (p *oidcProvider) AuthCodeURL(state string, ap AuthParams) string {
	var extra []oauth2.AuthCodeOption
	if ap.Nonce != "" {
		extra = append(extra, oidc.Nonce(ap.Nonce))
	}
	if len(ap.Scopes) > 0 && !slices.Contains(ap.Scopes, oidc.ScopeOpenID) {
		ap.Scopes = append([]string{oidc.ScopeOpenID}, ap.Scopes...)
	}
	return p.authCodeURL(state, ap, extra...)
}

// Exchange implements Provider. The ID token must verify (signature, issuer, audience =
// our client ID, expiry), carry exactly ap.Nonce, and match the access token's hash when
// it has one. The caller must set ap.Nonce: with an upstream that lacks PKCE the nonce
// is what stops an attacker's code being injected into a user's login.
func (p *oidcProvider) Exchange(ctx context.Context, code string, ap AuthParams) (*Token, *Identity, error) {
	tok, err := p.exchange(ctx, code, ap)
	if err != nil {
		return nil, nil, err
	}
	claims, err := p.claims(ctx, tok, ap.Nonce)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s): %w", ErrIdentity, p.name, err)
	}
	id, err := identityFrom(claims, p.s.mapping)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (%s): %w", ErrIdentity, p.name, err)
	}
	return p.tokenFrom(tok), id, nil
}

// claims verifies the ID token and merges it with userinfo.
func (p *oidcProvider) claims(ctx context.Context, tok *oauth2.Token, nonce string) (map[string]any, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the token response has no id_token")
	}
	idt, err := p.verifier.Verify(p.withClient(ctx), raw)
	if err != nil {
		return nil, fmt.Errorf("verify id token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("verify id token: nonce does not match the authorization request")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, fmt.Errorf("verify id token: %w", err)
		}
	}
	var rawClaims json.RawMessage
	if err := idt.Claims(&rawClaims); err != nil {
		return nil, fmt.Errorf("id token claims: %w", err)
	}
	var claims map[string]any
	if err := decodeJSON(rawClaims, &claims); err != nil {
		return nil, fmt.Errorf("id token claims: %w", err)
	}
	if p.s.userInfoURL == "" {
		return claims, nil
	}

	// Userinfo often has more than the ID token (groups, profile fields). A failure is
	// a failed login, not a silently thinner identity: login rules must not depend on
	// whether a request happened to get through.
	info, err := userInfo(ctx, p.s, tok.AccessToken)
	if err != nil {
		return nil, err
	}
	// OIDC Core §5.3.2: the userinfo sub MUST match the ID token's, or the response
	// MUST NOT be used.
	if sub, _ := info["sub"].(string); sub != idt.Subject {
		return nil, fmt.Errorf("userinfo sub %q does not match the id token's %q", sub, idt.Subject)
	}
	// The signed ID token wins where both speak.
	maps.Copy(info, claims)
	return info, nil
}

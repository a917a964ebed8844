package resource

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwtAlgorithms are the signature algorithms accepted: what mcpauth signs with.
// RFC 8725 §3.1: "libraries MUST enable the caller to specify a supported set of
// algorithms and MUST NOT use any other algorithms when performing cryptographic
// operations". "none" and the HMAC family are never accepted: with a public JWKS an
// HS256 token "signed" with a published key would verify.
var jwtAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// accessTokenClaims are the claims of an RFC 9068 access token as mcpauth issues it,
// with gid, the grant the token belongs to.
type accessTokenClaims struct {
	Issuer    string      `json:"iss"`
	Subject   string      `json:"sub"`
	Audience  audience    `json:"aud"`
	ClientID  string      `json:"client_id"`
	Scope     string      `json:"scope"`
	IssuedAt  numericDate `json:"iat"`
	NotBefore numericDate `json:"nbf"`
	ExpiresAt numericDate `json:"exp"`
	TokenID   string      `json:"jti"`
	GrantID   string      `json:"gid"`
}

// verifiedJWT is a token whose signature and claims were checked, kept so that the
// next request with it costs a hash and a map lookup instead of a signature check.
type verifiedJWT struct {
	info *Info
	kid  string
}

// looksLikeJWT tells JWTs (JWS compact serialization: three dot-separated parts) from
// mcpauth's opaque tokens, which have no dot.
func looksLikeJWT(token string) bool { return strings.Count(token, ".") == 2 }

// verifyJWT validates a JWT access token locally. Only two things can send it over
// the network: a kid not in the cached JWKS (one rate-limited fetch), and a revocation
// feed that has not answered within RevocationMaxLag, when the token is introspected
// instead, since a local check can then no longer tell a revoked grant from a live one.
func (v *Verifier) verifyJWT(ctx context.Context, token string) (*Info, error) {
	v.revocations.start()
	now := v.cfg.Now()
	if !v.revocations.fresh(now) {
		if !v.revocations.awaitFirst(ctx) || !v.revocations.fresh(v.cfg.Now()) {
			return v.verifyIntrospectedWithin(ctx, token, v.cfg.RevocationMaxLag)
		}
	}
	k := keyOf(token)
	ent, ok := v.jwts.get(k, now)
	if !ok || !v.keys.has(ctx, ent.kid) {
		var err error
		if ent, err = v.checkJWT(ctx, token, now); err != nil {
			return nil, err
		}
		v.jwts.put(k, ent, ent.info.ExpiresAt.Add(v.cfg.JWTLeeway))
	}
	// Checked on every request, cached or not: revocation is what the feed is for.
	if v.revocations.revoked(ent.info.GrantID, ent.info.TokenID) {
		return nil, invalid("token has been revoked")
	}
	info := ent.info.clone()
	info.token = token
	return info, nil
}

// checkJWT verifies the signature and the claims of an RFC 9068 access token.
func (v *Verifier) checkJWT(ctx context.Context, token string, now time.Time) (*verifiedJWT, error) {
	jws, err := jose.ParseSignedCompact(token, jwtAlgorithms)
	if err != nil {
		return nil, invalid("malformed JWT, or not signed with ES256 or RS256")
	}
	h := jws.Signatures[0].Header
	// RFC 9068 §4: "Resource servers receiving a JWT access token MUST validate the
	// typ header value to be "at+jwt" or "application/at+jwt" and reject tokens
	// carrying any other value." An ID token signed with the same key is refused here.
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, invalid("not a JWT access token (typ must be at+jwt, RFC 9068)")
	}
	if h.KeyID == "" {
		return nil, invalid("JWT names no signing key (kid)")
	}
	key, err := v.keys.key(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm {
		return nil, invalid("JWT algorithm does not match its key")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, invalid("JWT signature does not verify")
	}
	var c accessTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalid("malformed JWT claims")
	}
	if err := v.checkClaims(&c, now); err != nil {
		return nil, err
	}
	return &verifiedJWT{kid: h.KeyID, info: &Info{
		Subject:   c.Subject,
		ClientID:  c.ClientID,
		Scopes:    strings.Fields(c.Scope),
		Audience:  []string(c.Audience),
		Issuer:    c.Issuer,
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
		GrantID:   c.GrantID,
		TokenID:   c.TokenID,
		JWT:       true,
	}}, nil
}

// checkClaims is RFC 9068 §4's validation of the claims.
func (v *Verifier) checkClaims(c *accessTokenClaims, now time.Time) error {
	leeway := v.cfg.JWTLeeway
	switch {
	case c.Issuer != v.cfg.AuthorizationServers[0]:
		// "The issuer identifier for the authorization server ... MUST exactly match
		// the value of the iss claim."
		return invalid("token was issued by an authorization server this resource does not trust")
	case !v.audienceMatches(c.Audience):
		// "The resource server MUST validate that the aud claim contains a resource
		// indicator value corresponding to an identifier the resource server expects
		// for itself."
		return invalid("token was issued for another resource")
	case c.ExpiresAt.IsZero():
		return invalid("JWT has no exp")
	case !now.Before(c.ExpiresAt.Add(leeway)):
		// "The current time MUST be before the time represented by the exp claim."
		return invalid("token has expired")
	case !c.NotBefore.IsZero() && now.Add(leeway).Before(c.NotBefore.Time):
		return invalid("token is not valid yet")
	case c.Subject == "" || c.ClientID == "":
		return invalid("JWT lacks sub or client_id (RFC 9068 §2.2)")
	case c.TokenID == "" || c.GrantID == "":
		// Without them the revocation feed could not reach the token.
		return invalid("JWT lacks jti or gid, so its revocation could not be followed")
	}
	return nil
}

// UpstreamToken returns the user's upstream access token for info, as introspection
// hands it to this resource server. Tokens validated by introspection already carry
// it (Info.UpstreamAccessToken); for a JWT verified locally it costs one
// introspection, cached like any other, so only tools that need the upstream token
// pay for it. The result is empty when the authorization server does not share
// upstream tokens with this resource server or has none usable. Errors wrap
// ErrInvalidToken (the token died since) or ErrUnavailable.
func (v *Verifier) UpstreamToken(ctx context.Context, info *Info) (token string, expiresAt time.Time, err error) {
	if info.UpstreamAccessToken != "" || !info.JWT {
		return info.UpstreamAccessToken, info.UpstreamTokenExpiresAt, nil
	}
	if info.token == "" {
		return "", time.Time{}, errors.New("this Info did not come from Verify, so its token is unknown")
	}
	full, err := v.verifyIntrospected(ctx, info.token)
	if err != nil {
		return "", time.Time{}, err
	}
	return full.UpstreamAccessToken, full.UpstreamTokenExpiresAt, nil
}

package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// ErrInvalidToken is returned (wrapped) for a token this resource must refuse:
// malformed, unknown, inactive, expired, not an access token, or issued for another
// resource. It is the Go MCP SDK's auth.ErrInvalidToken, so either name matches.
var ErrInvalidToken = auth.ErrInvalidToken

// maxTokenLength refuses absurd tokens before they cost an introspection.
const maxTokenLength = 8 << 10

// Info is what a validated token says about the request. Handlers get it from
// FromContext; MCP tools from FromTokenInfo.
type Info struct {
	// Subject is the user the token was issued to (the introspection "sub").
	Subject string
	// ClientID is the MCP client the token was issued to.
	ClientID string
	// Scopes are the scopes granted to the token, as the authorization server
	// reported them (hierarchies not expanded).
	Scopes []string
	// Audience are the resources the token was issued for (RFC 8707); one of them is
	// this server.
	Audience []string
	// Issuer is the authorization server that issued the token, when it said.
	Issuer string
	// IssuedAt and ExpiresAt are the token's iat and exp (zero when absent).
	IssuedAt  time.Time
	ExpiresAt time.Time
	// GrantID is the grant (login) the token belongs to: every token refreshed from
	// one login shares it, and revoking the grant revokes them all. TokenID is the
	// token's own id (jti). Both come from a JWT's gid and jti claims, or from
	// introspection when the authorization server includes them.
	GrantID string
	TokenID string
	// JWT reports that the token was a JWT verified locally. Such an Info carries no
	// upstream token: get it with Verifier.UpstreamToken.
	JWT bool

	// UpstreamAccessToken is the user's access token at the upstream identity
	// provider (GitHub, Google, ...), for tools that call the upstream API on the
	// user's behalf. Empty when the authorization server does not share it with this
	// resource server or has none usable (the user must log in again). It is a
	// different token from the one the MCP client sent: the MCP specification forbids
	// passing the client's token through to other APIs.
	UpstreamAccessToken string
	// UpstreamTokenExpiresAt is when UpstreamAccessToken expires (zero when unknown).
	UpstreamTokenExpiresAt time.Time
	// UpstreamProvider names the upstream provider's type ("github", "oidc", ...).
	UpstreamProvider string

	// token is the bearer token this Info was verified from, for UpstreamToken. It is
	// set on the copy handed to the request only, never on what the caches keep.
	token string
}

// String describes the Info without its upstream token, so a logged Info leaks no
// credential.
func (i *Info) String() string {
	return fmt.Sprintf("resource.Info{Subject: %q, ClientID: %q, Scopes: %q, Audience: %q, GrantID: %q, ExpiresAt: %s, UpstreamAccessToken: %s}",
		i.Subject, i.ClientID, i.Scopes, i.Audience, i.GrantID, i.ExpiresAt.Format(time.RFC3339), redacted(i.UpstreamAccessToken))
}

// LogValue is String for log/slog.
func (i *Info) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("sub", i.Subject), slog.String("client_id", i.ClientID), slog.String("gid", i.GrantID),
		slog.Any("scopes", i.Scopes), slog.Time("exp", i.ExpiresAt),
		slog.String("upstream_access_token", redacted(i.UpstreamAccessToken)))
}

func redacted(s string) string {
	if s == "" {
		return "none"
	}
	return "[redacted]"
}

func (i *Info) clone() *Info {
	c := *i
	c.Scopes = slices.Clone(i.Scopes)
	c.Audience = slices.Clone(i.Audience)
	return &c
}

type infoKey struct{}

// FromContext returns the Info that Middleware or RequireScopes stored for the request.
func FromContext(ctx context.Context) (*Info, bool) {
	info, ok := ctx.Value(infoKey{}).(*Info)
	return info, ok
}

// ContextWithInfo returns ctx carrying info, as Middleware does, for tests of handlers
// that read FromContext. Middleware and RequireScopes trust an Info already in the
// context (they check only its scope), so production code should not set one.
func ContextWithInfo(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// TokenInfoExtraKey is the key of the *Info in auth.TokenInfo.Extra, as filled by
// Middleware and TokenVerifier.
const TokenInfoExtraKey = "mcpauth.resource.info"

// FromTokenInfo returns the Info inside the Go MCP SDK's token information, which
// tool handlers receive as req.Extra.TokenInfo (the SDK runs tools on a context of
// its own, so FromContext does not reach them).
func FromTokenInfo(ti *auth.TokenInfo) (*Info, bool) {
	if ti == nil {
		return nil, false
	}
	info, ok := ti.Extra[TokenInfoExtraKey].(*Info)
	return info, ok
}

// Verifier validates bearer tokens for one protected resource and serves its metadata.
// It is safe for concurrent use.
type Verifier struct {
	cfg        Config
	resourceID resourceID
	metadata   []byte // the RFC 9728 document, encoded once
	disc       *discovery
	intro      *introspector
	positive   *lru[*introspection] // active introspection results
	negative   *lru[*introspection] // inactive ones
	flights    flightGroup

	keys        *keySet
	jwts        *lru[*verifiedJWT] // JWTs whose signature and claims were checked
	revocations *follower
}

// New validates cfg and returns a Verifier. It makes no network request: the
// introspection endpoint and JWKS, when not configured, are discovered on first use,
// and the revocation feed is followed from the first JWT on (or from Start). Close
// stops following it.
func New(cfg Config) (*Verifier, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("resource config: %w", err)
	}
	id, _ := parseResourceID(cfg.Resource)
	v := &Verifier{
		cfg:        cfg,
		resourceID: id,
		positive:   newLRU[*introspection](cfg.CacheMaxEntries),
		negative:   newLRU[*introspection](cfg.CacheMaxEntries),
	}
	v.disc = &discovery{cfg: &v.cfg}
	v.intro = &introspector{cfg: &v.cfg, disc: v.disc}
	v.keys = &keySet{cfg: &v.cfg, disc: v.disc}
	v.jwts = newLRU[*verifiedJWT](cfg.CacheMaxEntries)
	v.revocations = newFollower(&v.cfg)
	if v.metadata, err = v.encodeMetadata(); err != nil {
		return nil, err
	}
	return v, nil
}

// Resource returns the canonical resource identifier.
func (v *Verifier) Resource() string { return v.cfg.Resource }

// RequiredScopes returns the scopes every request through Middleware needs.
func (v *Verifier) RequiredScopes() []string { return slices.Clone(v.cfg.RequiredScopes) }

// Start follows the revocation feed now, rather than from the first JWT, and waits
// for its first answer (or ctx), so the first requests are verified locally too.
// Calling it is optional; an error (ErrUnavailable) leaves the follower trying, and
// JWTs are introspected until it succeeds.
func (v *Verifier) Start(ctx context.Context) error {
	v.revocations.start()
	return v.revocations.wait(ctx)
}

// Close stops following the revocation feed. Verify keeps working afterwards, but
// introspects JWTs once the last read of the feed is older than RevocationMaxLag.
func (v *Verifier) Close() error {
	v.revocations.close()
	return nil
}

// Verify validates token and returns what it says. A JWT access token (RFC 9068) is
// verified locally against the authorization server's JWKS, and refused once the
// revocation feed names its grant or its jti; any other token is introspected.
// Errors wrap ErrInvalidToken for a token to refuse (401) or ErrUnavailable when the
// authorization server could not answer (503); a done ctx returns its error. Verify
// checks no scope: see HasScopes, Middleware and RequireScopes.
func (v *Verifier) Verify(ctx context.Context, token string) (*Info, error) {
	if token == "" || len(token) > maxTokenLength || !isToken68(token) {
		return nil, invalid("malformed token")
	}
	if looksLikeJWT(token) {
		return v.verifyJWT(ctx, token)
	}
	return v.verifyIntrospected(ctx, token)
}

// verifyIntrospected validates token by introspection, behind the caches.
func (v *Verifier) verifyIntrospected(ctx context.Context, token string) (*Info, error) {
	return v.verifyIntrospectedWithin(ctx, token, 0)
}

// verifyIntrospectedWithin is verifyIntrospected reusing an active cached result only
// when it is at most maxAge old (0: as old as the cache keeps it). JWTs introspected
// because the revocation feed is stale pass RevocationMaxLag: a result cached for
// CacheTTL would keep a grant revoked meanwhile usable for up to CacheTTL (30 s),
// past the RevocationMaxLag this package promises (and mcpauth's 5 s).
func (v *Verifier) verifyIntrospectedWithin(ctx context.Context, token string, maxAge time.Duration) (*Info, error) {
	k := keyOf(token)
	res, ok := v.cached(k)
	if ok && maxAge > 0 && res.Active && v.cfg.Now().Sub(res.fetched) > maxAge {
		ok = false
	}
	if !ok {
		var err error
		res, err = v.flights.do(ctx, k, func(ctx context.Context) (*introspection, error) {
			r, err := v.intro.introspect(ctx, token)
			if err != nil {
				v.cfg.Logger.WarnContext(ctx, "token introspection failed", "err", err)
				return nil, err
			}
			r.fetched = v.cfg.Now()
			v.remember(k, r)
			return r, nil
		})
		if err != nil {
			return nil, err
		}
	}
	info, err := v.validate(res)
	if err != nil {
		return nil, err
	}
	info.token = token
	return info, nil
}

// HasScopes reports whether info's scopes, with their implied scopes
// (Config.ScopeImplies), cover every scope in need.
func (v *Verifier) HasScopes(info *Info, need ...string) bool {
	return len(v.missingScopes(info.Scopes, need)) == 0
}

// cached returns a remembered introspection result.
func (v *Verifier) cached(k cacheKey) (*introspection, bool) {
	now := v.cfg.Now()
	if r, ok := v.positive.get(k, now); ok {
		return r, true
	}
	return v.negative.get(k, now)
}

// remember caches an introspection result. An active result lives at most CacheTTL,
// and never past the token's exp or the upstream token's expiry (tools must not be
// handed a dead upstream token while the server has a fresh one); an inactive one
// lives NegativeCacheTTL.
func (v *Verifier) remember(k cacheKey, r *introspection) {
	now := v.cfg.Now()
	if !r.Active {
		if v.cfg.NegativeCacheTTL > 0 {
			v.negative.put(k, &introspection{Active: false}, now.Add(v.cfg.NegativeCacheTTL))
		}
		return
	}
	if v.cfg.CacheTTL <= 0 {
		return
	}
	until := now.Add(v.cfg.CacheTTL)
	for _, t := range []time.Time{r.ExpiresAt.Time, r.UpstreamTokenExpiresAt.Time} {
		if !t.IsZero() && t.Before(until) {
			until = t
		}
	}
	if until.After(now) {
		v.positive.put(k, r, until)
	}
}

// validate applies the checks every request needs to an introspection result.
// OAuth 2.1 §5.2: the resource server "MUST validate the access token and ensure that
// it has not expired and that its scope covers the requested resource".
func (v *Verifier) validate(r *introspection) (*Info, error) {
	now := v.cfg.Now()
	switch {
	case !r.Active:
		return nil, invalid("token is not active")
	case !strings.EqualFold(r.TokenType, "Bearer"):
		// mcpauth marks access tokens "Bearer" and nothing else; without this check
		// a refresh token, which introspects as active too, would open the door.
		return nil, invalid("not a bearer access token")
	case r.Issuer != "" && !slices.Contains(v.cfg.AuthorizationServers, r.Issuer):
		// Issuers compare exactly (RFC 8414 §3.3). An authorization server configured
		// with a slightly different URL fails every token here, so say so loudly.
		v.cfg.Logger.Warn("introspected token names an issuer not in AuthorizationServers",
			"iss", r.Issuer, "authorization_servers", v.cfg.AuthorizationServers)
		return nil, invalid("token was issued by an authorization server this resource does not trust")
	case !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt.Time):
		return nil, invalid("token has expired")
	case !r.NotBefore.IsZero() && now.Before(r.NotBefore.Time):
		return nil, invalid("token is not valid yet")
	case !v.audienceMatches(r.Audience):
		return nil, invalid("token was issued for another resource")
	}
	return &Info{
		Subject:                r.Subject,
		ClientID:               r.ClientID,
		Scopes:                 strings.Fields(r.Scope),
		Audience:               slices.Clone([]string(r.Audience)),
		Issuer:                 r.Issuer,
		IssuedAt:               r.IssuedAt.Time,
		ExpiresAt:              r.ExpiresAt.Time,
		GrantID:                r.GrantID,
		TokenID:                r.TokenID,
		UpstreamAccessToken:    r.UpstreamAccessToken,
		UpstreamTokenExpiresAt: r.UpstreamTokenExpiresAt.Time,
		UpstreamProvider:       r.UpstreamProvider,
	}, nil
}

// TokenVerifier returns an auth.TokenVerifier for the Go MCP SDK's
// auth.RequireBearerToken. It validates like Verify (JWTs locally, revocations
// followed, other tokens introspected); a refused token unwraps to
// auth.ErrInvalidToken (the SDK answers 401), an unreachable authorization server is
// another error (the SDK answers 500). TokenInfo.Scopes holds the granted scopes with
// their implied ones, since the SDK compares scopes by exact string; TokenInfo.Extra
// holds the *Info (FromTokenInfo).
//
// Middleware is the spec-complete alternative and also fills the SDK's token
// information; see the package documentation for what RequireBearerToken lacks.
func (v *Verifier) TokenVerifier() auth.TokenVerifier {
	return func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		info, err := v.Verify(ctx, token)
		if err != nil {
			return nil, err
		}
		return v.tokenInfo(info), nil
	}
}

// tokenInfo converts info for the Go MCP SDK. UserID binds the SDK's sessions to the
// user, so a session id leaked to another user is refused.
func (v *Verifier) tokenInfo(info *Info) *auth.TokenInfo {
	return &auth.TokenInfo{
		Scopes:     v.effectiveScopes(info.Scopes),
		Expiration: info.ExpiresAt,
		UserID:     info.Subject,
		Extra:      map[string]any{TokenInfoExtraKey: info},
	}
}

// tokenError is a refused token, with the reason sent as error_description.
type tokenError struct{ reason string }

func invalid(reason string) error { return &tokenError{reason: reason} }

func (e *tokenError) Error() string { return ErrInvalidToken.Error() + ": " + e.reason }

// Is makes errors.Is(err, ErrInvalidToken) hold.
func (e *tokenError) Is(target error) bool { return target == ErrInvalidToken }

// reasonOf returns the description of a refused token.
func reasonOf(err error) string {
	var te *tokenError
	if errors.As(err, &te) {
		return te.reason
	}
	return "invalid token"
}

// isToken68 is RFC 6750 §2.1's b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
// "+" / "/" ) *"=".
func isToken68(s string) bool {
	end := len(s)
	for end > 0 && s[end-1] == '=' {
		end--
	}
	if end == 0 {
		return false
	}
	for i := 0; i < end; i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}

package resource

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults for the Config fields left zero.
const (
	// DefaultCacheTTL bounds how long an active introspection result is reused. A
	// revoked token stays usable here for at most this long, so keep it short.
	DefaultCacheTTL = 30 * time.Second
	// DefaultNegativeCacheTTL is how long an inactive result is remembered, long
	// enough to blunt a flood of the same bad token and short enough not to matter.
	DefaultNegativeCacheTTL = 5 * time.Second
	// DefaultCacheMaxEntries bounds each of the two caches (active and inactive).
	DefaultCacheMaxEntries = 10000
	// DefaultIntrospectionTimeout bounds one introspection or discovery request.
	DefaultIntrospectionTimeout = 10 * time.Second
	// DefaultRetryAfter is what a 503 tells the client to wait when the authorization
	// server cannot be reached.
	DefaultRetryAfter = 5 * time.Second

	// DefaultRevocationPollInterval is how often the revocation feed is read. With
	// DefaultRevocationMaxLag it keeps a revoked grant usable for at most 4 s, inside
	// the 5 s mcpauth promises.
	DefaultRevocationPollInterval = 2 * time.Second
	// DefaultJWTLeeway is the clock skew allowed on a JWT's exp and nbf.
	DefaultJWTLeeway = 10 * time.Second
	// MaxJWTLeeway bounds JWTLeeway: the server keeps a revocation in its feed only a
	// minute past the longest token's expiry, and the follower forgets it then, so a
	// leeway near a minute would let a revoked JWT verify again in its last seconds.
	MaxJWTLeeway = 30 * time.Second
	// DefaultJWKSMinRefetchInterval is the shortest time between two JWKS fetches
	// caused by tokens naming an unknown key, so a flood of forged kids costs the
	// authorization server one request per interval.
	DefaultJWKSMinRefetchInterval = 10 * time.Second
	// DefaultJWKSMaxAge is how long a fetched JWKS is used before it is fetched
	// again in the background, so a key withdrawn from it stops verifying tokens.
	DefaultJWKSMaxAge = 5 * time.Minute
	// DefaultMaxMessageBytes bounds a JSON-RPC request body read for its method and
	// tool name: far above any tools/call an MCP client sends, far below what would
	// hurt the server to hold in memory.
	DefaultMaxMessageBytes = 4 << 20
)

// Paths of the mcpauth authorization server that are not in its RFC 8414 metadata;
// the same values as its config.PathRevocations.
const (
	pathRevocations = "/oauth/revocations"
)

// offlineAccess is the scope that asks for a refresh token. The MCP specification:
// "MCP Servers (Protected Resources) SHOULD NOT include offline_access in
// WWW-Authenticate scope or Protected Resource Metadata scopes_supported, as refresh
// tokens are not a resource requirement."
const offlineAccess = "offline_access"

// Config configures a Verifier. Resource, AuthorizationServers, ClientID and
// ClientSecret are required; everything else has a default.
type Config struct {
	// Resource is the MCP server's canonical URL, the RFC 8707 resource indicator
	// clients request tokens for and the RFC 9728 "resource" (for example
	// https://mcp.example.com/mcp). Scheme and host are lower-cased.
	Resource string

	// AuthorizationServers are the issuer identifiers (RFC 8414) of the authorization
	// servers whose tokens this resource accepts; at least one. The introspection
	// endpoint is discovered from the first when IntrospectionEndpoint is empty.
	AuthorizationServers []string

	// IntrospectionEndpoint is the RFC 7662 endpoint. Empty: discovered from the first
	// authorization server's metadata on first use, and remembered.
	IntrospectionEndpoint string

	// ClientID and ClientSecret authenticate this resource server at the
	// introspection endpoint and the revocation feed (HTTP Basic, RFC 6749 §2.3.1).
	// RFC 7662 §2.1: "the endpoint MUST also require some form of authorization".
	ClientID     string
	ClientSecret string

	// ScopesSupported is the RFC 9728 scopes_supported: the scopes a client should
	// ask for to use this server. Empty: RequiredScopes followed by every scope of
	// ToolScopes. Must not hold offline_access.
	ScopesSupported []string

	// RequiredScopes are the scopes every request through Middleware needs, and the
	// scope named in 401 challenges. Must not hold offline_access.
	RequiredScopes []string

	// ScopeImplies declares scope hierarchies: a broader scope maps to the narrower
	// scopes it implies (transitively). The MCP specification: "Servers MUST account
	// for scope hierarchies, where a broader scope implies narrower ones, when
	// deciding whether a token is sufficient for an operation."
	ScopeImplies map[string][]string

	// ToolScopes maps an MCP tool's name to the scopes a tools/call of it needs on
	// top of RequiredScopes (with ScopeImplies applied, so "tools:admin" covers a tool
	// that needs "tools:read" when admin implies write implies read). Tools not named
	// need only RequiredScopes. When set, Middleware reads the MCP method and tool name
	// of every POST (the Mcp-Method and Mcp-Name headers, checked against the
	// JSON-RPC body) and answers a call that needs more with 403
	// error="insufficient_scope" naming every scope the call needs. Must not hold
	// offline_access. Only Middleware and RequireScopes enforce it: TokenVerifier, in
	// the SDK's own middleware, sees no tool names.
	ToolScopes map[string][]string

	// FilterToolsList makes tools/list answers (JSON or SSE) list only the tools the
	// token can call, so a client is not shown tools that would answer 403.
	FilterToolsList bool

	// MaxMessageBytes bounds the JSON-RPC body read to find the method and tool name
	// (only when ToolScopes or FilterToolsList is set); a larger one gets 413. Zero:
	// DefaultMaxMessageBytes.
	MaxMessageBytes int64

	// AcceptOriginAudience also accepts tokens whose audience is the bare origin of
	// Resource (https://mcp.example.com for https://mcp.example.com/mcp). Off by
	// default: such a token is valid for every resource on the host.
	AcceptOriginAudience bool

	// ResourceName and ResourceDocumentation are the RFC 9728 resource_name and
	// resource_documentation metadata (both optional).
	ResourceName          string
	ResourceDocumentation string

	// HTTPClient makes discovery, introspection, JWKS and revocation feed requests.
	// Nil: http.DefaultClient.
	HTTPClient *http.Client

	// CacheTTL bounds how long an active introspection result is reused; an entry
	// never outlives the token's exp nor the upstream token's expiry. Zero:
	// DefaultCacheTTL; negative: no caching.
	CacheTTL time.Duration
	// NegativeCacheTTL is how long an inactive result is reused. Zero:
	// DefaultNegativeCacheTTL; negative: not cached.
	NegativeCacheTTL time.Duration
	// CacheMaxEntries bounds each cache; the least recently used entry goes first.
	// Zero: DefaultCacheMaxEntries.
	CacheMaxEntries int

	// IntrospectionTimeout bounds one introspection, discovery or JWKS request (a
	// revocation feed read is bounded by RevocationPollInterval too). Zero:
	// DefaultIntrospectionTimeout.
	IntrospectionTimeout time.Duration

	// RetryAfter is the Retry-After of the 503 sent while the authorization server is
	// unreachable. Zero: DefaultRetryAfter.
	RetryAfter time.Duration

	// JWKSURI is where the authorization server publishes its signing keys (RFC 7517
	// JWK Set), used to verify JWT access tokens (RFC 9068) here without a request
	// to the server. Empty: the jwks_uri of the first authorization server's
	// metadata. JWTs are accepted only from that first authorization server.
	JWKSURI string
	// JWTLeeway is the clock skew allowed on a JWT's exp and nbf. Zero:
	// DefaultJWTLeeway; negative: none; at most MaxJWTLeeway.
	JWTLeeway time.Duration
	// JWKSMinRefetchInterval is the shortest time between two JWKS fetches caused by
	// an unknown key id. Zero: DefaultJWKSMinRefetchInterval.
	JWKSMinRefetchInterval time.Duration
	// JWKSMaxAge is how long a JWKS is used before it is refetched in the background.
	// Zero: DefaultJWKSMaxAge.
	JWKSMaxAge time.Duration

	// RevocationsEndpoint is the authorization server's revocation feed (mcpauth's
	// GET /oauth/revocations), which tells a JWT-verifying resource which grants and
	// tokens were revoked. Empty: the first authorization server's URL plus
	// /oauth/revocations. It is read with ClientID and ClientSecret.
	RevocationsEndpoint string
	// RevocationPollInterval is how often the feed is read. Zero:
	// DefaultRevocationPollInterval.
	RevocationPollInterval time.Duration
	// RevocationMaxLag is how old the last successful read of the feed may be for
	// JWTs to be verified locally. Past it (the feed is unreachable or slow), JWTs are
	// introspected like opaque tokens until the feed answers again. Zero: twice
	// RevocationPollInterval. It is the longest a revoked grant stays usable here.
	RevocationMaxLag time.Duration

	// Now is the clock. Nil: time.Now.
	Now func() time.Time

	// Logger receives authorization server failures. Nil: slog.Default().
	Logger *slog.Logger
}

// withDefaults validates cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	res, err := canonicalResource(cfg.Resource)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Resource = res
	if len(cfg.AuthorizationServers) == 0 {
		errs = append(errs, errors.New("at least one authorization server is required (RFC 9728 authorization_servers)"))
	}
	for _, as := range cfg.AuthorizationServers {
		if u, err := url.Parse(as); err != nil || !isHTTP(u) || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("authorization server %q must be an http(s) URL without query or fragment (RFC 8414 §2)", as))
		}
	}
	if cfg.IntrospectionEndpoint != "" {
		if u, err := url.Parse(cfg.IntrospectionEndpoint); err != nil || !isHTTP(u) {
			errs = append(errs, fmt.Errorf("introspection endpoint %q must be an http(s) URL", cfg.IntrospectionEndpoint))
		}
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		errs = append(errs, errors.New("introspection client credentials are required (RFC 7662 §2.1)"))
	}
	for _, tool := range slices.Sorted(maps.Keys(cfg.ToolScopes)) {
		if tool == "" {
			errs = append(errs, errors.New("tool scopes: a tool name is empty"))
		}
		errs = append(errs, checkScopes(fmt.Sprintf("tool scopes of %q", tool), cfg.ToolScopes[tool])...)
	}
	if len(cfg.ScopesSupported) == 0 {
		cfg.ScopesSupported = slices.Clone(cfg.RequiredScopes)
		for _, tool := range slices.Sorted(maps.Keys(cfg.ToolScopes)) {
			cfg.ScopesSupported = append(cfg.ScopesSupported, cfg.ToolScopes[tool]...)
		}
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	errs = append(errs, checkScopes("required scopes", cfg.RequiredScopes)...)
	errs = append(errs, checkScopes("scopes supported", cfg.ScopesSupported)...)
	for broad, narrow := range cfg.ScopeImplies {
		errs = append(errs, checkScopes("scope hierarchy", append([]string{broad}, narrow...))...)
	}
	cfg.RequiredScopes = dedupe(cfg.RequiredScopes)
	cfg.ScopesSupported = dedupe(cfg.ScopesSupported)

	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	cfg.CacheTTL = orDefault(cfg.CacheTTL, DefaultCacheTTL)
	cfg.NegativeCacheTTL = orDefault(cfg.NegativeCacheTTL, DefaultNegativeCacheTTL)
	if cfg.CacheMaxEntries <= 0 {
		cfg.CacheMaxEntries = DefaultCacheMaxEntries
	}
	cfg.IntrospectionTimeout = orDefault(cfg.IntrospectionTimeout, DefaultIntrospectionTimeout)
	cfg.RetryAfter = orDefault(cfg.RetryAfter, DefaultRetryAfter)
	for _, ep := range []struct{ name, url string }{{"JWKS URI", cfg.JWKSURI}, {"revocations endpoint", cfg.RevocationsEndpoint}} {
		if ep.url == "" {
			continue
		}
		if u, err := url.Parse(ep.url); err != nil || !isHTTP(u) {
			errs = append(errs, fmt.Errorf("%s %q must be an http(s) URL", ep.name, ep.url))
		}
	}
	cfg.JWTLeeway = max(orDefault(cfg.JWTLeeway, DefaultJWTLeeway), 0)
	if cfg.JWTLeeway > MaxJWTLeeway {
		errs = append(errs, fmt.Errorf("JWT leeway %s is above %s: revocations are kept only a minute past expiry", cfg.JWTLeeway, MaxJWTLeeway))
	}
	cfg.JWKSMinRefetchInterval = orDefault(cfg.JWKSMinRefetchInterval, DefaultJWKSMinRefetchInterval)
	cfg.JWKSMaxAge = orDefault(cfg.JWKSMaxAge, DefaultJWKSMaxAge)
	cfg.RevocationPollInterval = orDefault(cfg.RevocationPollInterval, DefaultRevocationPollInterval)
	cfg.RevocationMaxLag = orDefault(cfg.RevocationMaxLag, 2*cfg.RevocationPollInterval)
	switch {
	case cfg.RevocationPollInterval < 0 || cfg.JWKSMinRefetchInterval < 0 || cfg.JWKSMaxAge < 0:
		errs = append(errs, errors.New("revocation poll interval, JWKS refetch interval and JWKS max age must be positive"))
	case cfg.RevocationMaxLag < cfg.RevocationPollInterval:
		// A lag shorter than the interval would call the feed stale between two
		// healthy polls, and send every JWT to introspection half the time.
		errs = append(errs, fmt.Errorf("revocation max lag %s must be at least the poll interval %s", cfg.RevocationMaxLag, cfg.RevocationPollInterval))
	}
	if cfg.RevocationsEndpoint == "" && len(cfg.AuthorizationServers) > 0 {
		cfg.RevocationsEndpoint = strings.TrimSuffix(cfg.AuthorizationServers[0], "/") + pathRevocations
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, errors.Join(errs...)
}

// canonicalResource checks the resource identifier and returns its canonical form.
// RFC 8707 §2: the resource "MUST be an absolute URI ... MUST NOT include a fragment
// component". The MCP specification's canonical form uses a lower-case scheme and
// host; clients compare the metadata's resource to the URL they connect to, so it is
// kept otherwise exactly as configured.
func canonicalResource(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || !isHTTP(u) || u.Fragment != "" || strings.Contains(raw, "#") {
		return "", fmt.Errorf("resource %q must be an absolute http(s) URL without a fragment (RFC 8707 §2)", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return u.String(), nil
}

func isHTTP(u *url.URL) bool {
	s := strings.ToLower(u.Scheme)
	return (s == "https" || s == "http") && u.Host != "" && u.User == nil
}

// checkScopes validates scope tokens. They are written into quoted WWW-Authenticate
// parameters, so the RFC 6749 §3.3 syntax (no space, quote or backslash) is what
// keeps the header well-formed.
func checkScopes(what string, scopes []string) []error {
	var errs []error
	for _, s := range scopes {
		switch {
		case !validScopeToken(s):
			errs = append(errs, fmt.Errorf("%s: %q is not a valid scope (RFC 6749 §3.3)", what, s))
		case s == offlineAccess && what != "scope hierarchy":
			errs = append(errs, fmt.Errorf("%s: %s asks for a refresh token, not access to this resource; MCP servers do not advertise or require it", what, s))
		}
	}
	return errs
}

// validScopeToken: RFC 6749 §3.3, scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

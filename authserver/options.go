package authserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpauth/mcpauth/authserver/access"
	"github.com/mcpauth/mcpauth/authserver/adminapi"
	"github.com/mcpauth/mcpauth/authserver/clientpolicy"
	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// Default lifetimes: the origin's environment variables and their defaults
// (OAUTH_AUTH_CODE_TTL=300, OAUTH_ACCESS_TOKEN_TTL=900, OAUTH_REFRESH_TOKEN_TTL=86400,
// OAUTH_CLIENT_REGISTRATION_TTL=31536000, OAUTH_EXTERNAL_TOKEN_TTL=86400).
const (
	DefaultCodeTTL          = 5 * time.Minute
	DefaultAccessTokenTTL   = 15 * time.Minute
	DefaultRefreshTokenTTL  = 24 * time.Hour
	DefaultRegistrationTTL  = 8760 * time.Hour
	DefaultExternalTokenTTL = 24 * time.Hour
	// DefaultPendingTTL bounds the user's visit to the upstream provider (login, 2FA).
	DefaultPendingTTL = 10 * time.Minute
	// DefaultConsentTTL is how long a browser remembers an approved client.
	DefaultConsentTTL = 30 * 24 * time.Hour
	// DefaultCallbackPath is where the upstream provider sends the user back.
	DefaultCallbackPath = "/oauth/callback"
	// MinMasterKeyLen is the shortest accepted Options.MasterKey.
	MinMasterKeyLen = 32
	// DefaultRegistrationIdleTTL is how long a dynamic registration lives without
	// being used to obtain tokens.
	DefaultRegistrationIdleTTL = 30 * 24 * time.Hour
	// DefaultRegistrationMaxPerSource bounds the live registrations of one source
	// address.
	DefaultRegistrationMaxPerSource = 20
	// MaxRefreshReuseWindow is the longest accepted Options.RefreshReuseWindow: the
	// window lets a copied refresh token work for that long, so it stays short.
	MaxRefreshReuseWindow = 5 * time.Minute
)

// Options configure a Server. Issuer, Store, Upstream and MasterKey are required; every
// other field has a default.
type Options struct {
	// Issuer is the server's identifier (RFC 8414 §2) and the base of every endpoint
	// URL: https, no query, fragment or trailing slash. Its path, if any, prefixes every
	// endpoint path. Plain http is accepted only for a loopback host (development), or
	// for any host with AllowInsecureIssuer.
	Issuer string
	// AllowInsecureIssuer accepts a plain-http issuer on a non-loopback host, for a
	// development cluster without TLS. Never set it in production.
	AllowInsecureIssuer bool
	// DisplayName names this server on its pages ("Acme MCP login"). Default "mcpauth".
	DisplayName string
	// UpstreamDisplayName names the upstream provider to the user ("GitHub").
	// Default: Upstream.Name().
	UpstreamDisplayName string
	// ServiceDocumentation is a URL for humans, published in the metadata.
	ServiceDocumentation string
	// ScopesSupported are the scopes clients may request. A request for any other scope
	// fails with invalid_scope.
	ScopesSupported []string
	// DefaultScopes are granted when a request names no scope (the MCP conformance
	// tool sends none). They must be a subset of ScopesSupported.
	DefaultScopes []string
	// UpstreamScopes maps a scope of ScopesSupported to the extra upstream scopes a
	// token with it needs; a step-up to it sends the user upstream for the ones their
	// stored upstream token lacks (docs/scopes.md).
	UpstreamScopes map[string][]string
	// CallbackPath is appended to the issuer to form the upstream redirect URL that the
	// upstream provider must be configured with (see Server.CallbackURL).
	CallbackPath string

	CodeTTL          time.Duration // authorization codes
	AccessTokenTTL   time.Duration // our access tokens
	RefreshTokenTTL  time.Duration // a grant's lifetime: refresh does not extend it
	RegistrationTTL  time.Duration // dynamically registered clients
	ExternalTokenTTL time.Duration // the users' upstream tokens in the store
	PendingTTL       time.Duration // a login in progress at the upstream
	ConsentTTL       time.Duration // a remembered consent

	// RefreshReuseWindow is how long a rotated refresh token, presented again by the
	// client it was issued to, gets the same successor (the token response its
	// rotation issued) instead of revoking the grant, so that a client refreshing
	// twice in parallel, or retrying a refresh whose answer it lost, keeps its
	// session. Reuse after the window, or by another client, revokes the grant (OAuth
	// 2.1 §4.3.1). Zero turns the window off (strict rotation); unlike the TTLs it has
	// no default here: configuration (tokens.refreshReuseWindow) defaults it to 30s.
	// At most MaxRefreshReuseWindow.
	RefreshReuseWindow time.Duration

	// AllowPKCEPlain accepts code_challenge_method=plain. OAuth 2.1 allows it only when
	// S256 is impossible; leave it off.
	AllowPKCEPlain bool
	// DynamicRegistration turns on RFC 7591 client registration.
	DynamicRegistration bool
	// RegistrationRateLimit bounds registrations per client address; a request over
	// it gets 429 with Retry-After. Default DefaultRegistrationRateLimit; a negative
	// Burst turns it off.
	RegistrationRateLimit RateLimit
	// RegistrationIdleTTL removes a dynamic registration that has not been used to
	// obtain tokens for this long (the store's expiry does it: each use slides the
	// record's expiry forward, recorded at most once an hour). Zero means
	// DefaultRegistrationIdleTTL; negative turns idle removal off, leaving
	// RegistrationTTL alone.
	RegistrationIdleTTL time.Duration
	// RegistrationMaxPerSource bounds the live dynamic registrations of one client
	// address (IPv6 by /64; see TrustedProxies), counted in the store and so shared
	// by every replica: one more gets 429 with Retry-After. Zero means
	// DefaultRegistrationMaxPerSource; negative turns the limit off.
	RegistrationMaxPerSource int
	// DeviceAuthorization configures the device authorization grant (RFC 8628) for
	// command-line clients on machines without a browser; off by default.
	DeviceAuthorization DeviceAuthorizationOptions

	// TrustedProxies are the networks of reverse proxies (an ingress, a load
	// balancer) in front of the server. A request from one of them is attributed to
	// the address it names in X-Forwarded-For; from anywhere else that header is
	// ignored. Used only to tell clients apart for rate limiting.
	TrustedProxies []netip.Prefix

	// AccessTokenFormat is config.AccessTokenJWT (the default: RFC 9068 tokens that
	// resource servers verify with the JWKS) or config.AccessTokenOpaque (verified by
	// introspection). Either way the server accepts both kinds it issued, so changing
	// it leaves live tokens working.
	AccessTokenFormat config.AccessTokenFormat
	// SigningKeys sign JWT access tokens and fill the JWKS. Nil with the jwt format:
	// New generates one ES256 key, which only suits a single replica (see
	// GenerateSigningKeys). Replicas sharing a store must share the keys.
	SigningKeys *SigningKeys

	// Store keeps every piece of flow state. It must keep revocation feed entries at
	// least FeedRetention(AccessTokenTTL).
	Store store.Store
	// Upstream is the identity provider users log in with.
	Upstream upstream.Provider
	// MasterKey (at least 32 random bytes) is the root of every key the server uses; see
	// deriveKeys. All replicas sharing a store must share it.
	MasterKey []byte
	// Clients holds pre-registered clients (static config, later MCPClient resources).
	// Optional.
	Clients ClientRegistry
	// CIMD resolves Client ID Metadata Documents; nil turns CIMD off. Optional.
	CIMD CIMDFetcher
	// Access decides at the callback who may log in and which restricted scopes they
	// are granted (see package access); nil lets everyone in. When the Upstream is an
	// upstream.MembershipReader, GitHub organization and team rules are checked with
	// the user's upstream token.
	Access *access.Policy
	// ClientPolicy says which clients may ask (package clientpolicy): metadata-document
	// domains, redirect URI patterns for dynamic and metadata-document clients, the
	// most scope of each kind of client, and approval of new clients. nil allows
	// every client the other options allow.
	ClientPolicy *clientpolicy.Policy
	// AdminToken is the bearer token of the admin API (adminapi: list and revoke
	// grants), at least MinAdminTokenLen characters. Empty turns the API off: its
	// paths answer 404.
	AdminToken string

	// Logger receives operational logs; never tokens or secrets. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Registerer receives the server's metrics and Gatherer serves /metrics. Default: a
	// fresh registry (with Go and process collectors) for both.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// OmitMetricsEndpoint leaves /metrics out of Handler, for serving
	// Server.MetricsHandler on a separate, private listener.
	OmitMetricsEndpoint bool
}

// The access token formats, under names that say they are no secret.
const (
	formatJWT    = config.AccessTokenJWT
	formatOpaque = config.AccessTokenOpaque
)

// FeedRetention is how long the revocation feed keeps an entry for access tokens
// that live accessTokenTTL: until every token the entry could concern has expired,
// plus a minute for clocks and slow followers.
func FeedRetention(accessTokenTTL time.Duration) time.Duration {
	return accessTokenTTL + time.Minute
}

// DeviceAuthorizationOptions configure the device authorization grant (RFC 8628).
type DeviceAuthorizationOptions struct {
	// Enabled serves the device authorization endpoint and the verification page,
	// and lets clients whose grant types include the device code grant use it.
	Enabled bool
	// CodeTTL is how long a device code and its user code live. Default 10 minutes.
	CodeTTL time.Duration
	// Interval is how long a device waits between two polls of the token endpoint
	// (RFC 8628 §3.2); faster polling is answered slow_down. Default 5 seconds.
	Interval time.Duration
	// VerificationRateLimit bounds the user codes one address may try on the
	// verification page (RFC 8628 §5.1: guessing a code takes many tries). Default
	// DefaultDeviceVerificationRateLimit.
	VerificationRateLimit RateLimit
}

// Device authorization defaults.
const (
	DefaultDeviceCodeTTL  = 10 * time.Minute
	DefaultDeviceInterval = 5 * time.Second
)

// DefaultDeviceVerificationRateLimit lets an address try 10 user codes at once, then
// one every 6 seconds: ample for people mistyping, and with 20^8 possible codes it
// makes guessing a live one hopeless.
var DefaultDeviceVerificationRateLimit = RateLimit{Burst: 10, Every: 6 * time.Second}

// withDefaults returns o with every unset optional field filled in.
func (o Options) withDefaults() Options {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&o.CodeTTL, DefaultCodeTTL)
	setDur(&o.AccessTokenTTL, DefaultAccessTokenTTL)
	setDur(&o.RefreshTokenTTL, DefaultRefreshTokenTTL)
	setDur(&o.RegistrationTTL, DefaultRegistrationTTL)
	setDur(&o.ExternalTokenTTL, DefaultExternalTokenTTL)
	setDur(&o.PendingTTL, DefaultPendingTTL)
	setDur(&o.ConsentTTL, DefaultConsentTTL)
	setDur(&o.RegistrationIdleTTL, DefaultRegistrationIdleTTL)
	if o.RegistrationMaxPerSource == 0 {
		o.RegistrationMaxPerSource = DefaultRegistrationMaxPerSource
	}
	setDur(&o.DeviceAuthorization.CodeTTL, DefaultDeviceCodeTTL)
	setDur(&o.DeviceAuthorization.Interval, DefaultDeviceInterval)
	if o.DeviceAuthorization.VerificationRateLimit == (RateLimit{}) {
		o.DeviceAuthorization.VerificationRateLimit = DefaultDeviceVerificationRateLimit
	}
	if o.DisplayName == "" {
		o.DisplayName = "mcpauth"
	}
	if o.UpstreamDisplayName == "" && o.Upstream != nil {
		o.UpstreamDisplayName = o.Upstream.Name()
	}
	if o.CallbackPath == "" {
		o.CallbackPath = DefaultCallbackPath
	}
	if o.AccessTokenFormat == "" {
		o.AccessTokenFormat = formatJWT
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Registerer == nil && o.Gatherer == nil {
		reg := prometheus.NewRegistry()
		o.Registerer, o.Gatherer = reg, reg
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.DefaultRegisterer
	}
	return o
}

// validate reports every problem in o (after defaults), naming the field.
func (o Options) validate() error {
	var errs []error
	if err := validateIssuer(o.Issuer, o.AllowInsecureIssuer); err != nil {
		errs = append(errs, fmt.Errorf("Issuer: %w", err))
	}
	if o.Store == nil {
		errs = append(errs, errors.New("Store: required"))
	}
	if o.Upstream == nil {
		errs = append(errs, errors.New("Upstream: required"))
	}
	if len(o.MasterKey) < MinMasterKeyLen {
		errs = append(errs, fmt.Errorf("MasterKey: %d bytes, need at least %d", len(o.MasterKey), MinMasterKeyLen))
	}
	switch o.AccessTokenFormat {
	case formatJWT, formatOpaque:
	default:
		errs = append(errs, fmt.Errorf("AccessTokenFormat: %q is not one of jwt, opaque", o.AccessTokenFormat))
	}
	if !strings.HasPrefix(o.CallbackPath, "/") || !safePath(o.CallbackPath) {
		errs = append(errs, fmt.Errorf("CallbackPath: %q must be a path starting with / (letters, digits, -._~/)", o.CallbackPath))
	}
	if o.AdminToken != "" && len(o.AdminToken) < MinAdminTokenLen {
		errs = append(errs, fmt.Errorf("AdminToken: %d characters, need at least %d", len(o.AdminToken), MinAdminTokenLen))
	}
	if slices.Contains([]string{pathAuthorize, pathConsent, pathToken, pathRegister, pathIntrospect, pathRevoke, pathDeviceAuthorization, pathDevice,
		adminapi.PathGrants, adminapi.PathRevoke, adminapi.PathClients, adminapi.PathClientCount, adminapi.PathApprovals, pathJWKS, pathRevocations}, o.CallbackPath) ||
		strings.HasPrefix(o.CallbackPath, pathRegister+"/") {
		errs = append(errs, fmt.Errorf("CallbackPath: %q is another endpoint's path", o.CallbackPath))
	}
	if o.RegistrationIdleTTL > 0 && o.RegistrationIdleTTL < time.Second {
		errs = append(errs, fmt.Errorf("RegistrationIdleTTL: %s is shorter than a second", o.RegistrationIdleTTL))
	}
	if o.RefreshReuseWindow < 0 || o.RefreshReuseWindow > MaxRefreshReuseWindow {
		errs = append(errs, fmt.Errorf("RefreshReuseWindow: %s is outside [0s, %s]", o.RefreshReuseWindow, MaxRefreshReuseWindow))
	}
	for _, sc := range o.ScopesSupported {
		if !validScopeToken(sc) {
			errs = append(errs, fmt.Errorf("ScopesSupported: %q is not a valid scope (RFC 6749 §3.3)", sc))
		}
	}
	for _, sc := range o.DefaultScopes {
		if !slices.Contains(o.ScopesSupported, sc) {
			errs = append(errs, fmt.Errorf("DefaultScopes: %q is not in ScopesSupported", sc))
		}
	}
	for sc, ups := range o.UpstreamScopes {
		if !slices.Contains(o.ScopesSupported, sc) {
			errs = append(errs, fmt.Errorf("UpstreamScopes: %q is not in ScopesSupported", sc))
		}
		if len(ups) == 0 || slices.ContainsFunc(ups, func(u string) bool { return !validScopeToken(u) }) {
			errs = append(errs, fmt.Errorf("UpstreamScopes: %q needs a list of valid upstream scopes", sc))
		}
	}
	if o.ServiceDocumentation != "" {
		if u, err := url.Parse(o.ServiceDocumentation); err != nil || !u.IsAbs() {
			errs = append(errs, fmt.Errorf("ServiceDocumentation: %q is not an absolute URL", o.ServiceDocumentation))
		}
	}
	for name, d := range map[string]time.Duration{
		"CodeTTL": o.CodeTTL, "AccessTokenTTL": o.AccessTokenTTL, "RefreshTokenTTL": o.RefreshTokenTTL,
		"RegistrationTTL": o.RegistrationTTL, "ExternalTokenTTL": o.ExternalTokenTTL,
		"PendingTTL": o.PendingTTL, "ConsentTTL": o.ConsentTTL,
	} {
		if d < time.Second {
			errs = append(errs, fmt.Errorf("%s: %s is shorter than a second", name, d))
		}
	}
	return errors.Join(errs...)
}

// validateIssuer applies RFC 8414 §2: "a URL that uses the https scheme and has no query
// or fragment components". Clients compare it byte for byte with the URL they derived the
// metadata location from, so a trailing slash is refused rather than normalised.
func validateIssuer(issuer string, allowHTTP bool) error {
	u, err := url.Parse(issuer)
	if err != nil {
		return err
	}
	switch {
	case issuer == "":
		return errors.New("required")
	case !u.IsAbs() || u.Host == "":
		return fmt.Errorf("%q is not an absolute URL", issuer)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(issuer, "#"):
		return fmt.Errorf("%q has a query or fragment", issuer)
	case u.User != nil:
		return fmt.Errorf("%q has user info", issuer)
	case strings.HasSuffix(issuer, "/"):
		return fmt.Errorf("%q ends with a slash", issuer)
	case !safePath(u.Path) || u.RawPath != "":
		return fmt.Errorf("%q: the path may hold only letters, digits and -._~/", issuer)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && (isLoopbackHost(u.Hostname()) || allowHTTP):
		return nil
	}
	return fmt.Errorf("%q must use https (http only on a loopback host)", issuer)
}

// safePath reports whether p holds only unreserved characters and slashes (RFC 3986
// §2.3), so it is used verbatim in URLs and in http.ServeMux patterns.
func safePath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~/", c) >= 0) {
			return false
		}
	}
	return !strings.Contains(p, "//")
}

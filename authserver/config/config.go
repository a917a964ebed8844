package config

import (
	"net/netip"
	"strings"
	"time"
)

// Paths the authorization server serves. Only the upstream callback is configurable
// (CallbackPath), because it is registered at the upstream provider and may have to
// match an existing registration; the others are fixed so that clients, probes and
// the operator can rely on them.
const (
	PathAuthorizationServerMetadata = "/.well-known/oauth-authorization-server"
	PathOpenIDConfiguration         = "/.well-known/openid-configuration"
	PathAuthorize                   = "/oauth/authorize"
	PathToken                       = "/oauth/token"
	PathRegister                    = "/oauth/register"
	PathIntrospect                  = "/oauth/introspect"
	PathRevoke                      = "/oauth/revoke"
	PathJWKS                        = "/oauth/jwks"
	PathRevocations                 = "/oauth/revocations"
	PathHealthz                     = "/healthz"
	PathReadyz                      = "/readyz"
	PathMetrics                     = "/metrics"
)

// Defaults for fields that have one. Default returns a Config holding all of them.
const (
	DefaultListenAddress = ":8080"
	DefaultCallbackPath  = "/oauth/callback"
	// DefaultScope is the one scope a default server supports and grants when a client
	// asks for none (the MCP conformance tool sends no scope at all).
	DefaultScope = "mcp"
	// DefaultKeyPrefix is the Redis key prefix when store.redis.keyPrefix is empty.
	DefaultKeyPrefix = "mcpauth"

	DefaultAuthorizationCodeTTL  = 5 * time.Minute
	DefaultAccessTokenTTL        = 15 * time.Minute
	DefaultRefreshTokenTTL       = 24 * time.Hour
	DefaultClientRegistrationTTL = 365 * 24 * time.Hour
	DefaultExternalTokenTTL      = 24 * time.Hour
	DefaultRefreshReuseWindow    = 30 * time.Second
)

// AccessTokenFormat is what an access token looks like on the wire.
type AccessTokenFormat string

// Access token formats. JWTs (RFC 9068) can be verified by an MCP server or a gateway
// on its own, from the published keys; opaque tokens only by introspection.
const (
	AccessTokenJWT    AccessTokenFormat = "jwt"
	AccessTokenOpaque AccessTokenFormat = "opaque"
)

// Config is the whole configuration file. Build one from Default, not from a zero
// value: fields whose default is true or non-empty are marshalled even when false or
// empty, so a zero value round-trips as written, not as defaulted.
type Config struct {
	// Issuer is the server's public base URL, and the `issuer` of its metadata. MCP
	// clients compare it byte for byte with the URL they derived it from, so it is kept
	// exactly as written except that a trailing slash is removed. https, or http on a
	// loopback host for development; no query, fragment or user info. Required.
	Issuer string `json:"issuer"`
	// ListenAddress is the host:port the HTTP(S) server listens on. Default ":8080".
	ListenAddress string `json:"listenAddress"`
	// MetricsAddress, when set, serves /metrics on a separate host:port (so it can stay
	// off the public Service); when empty, /metrics is served on ListenAddress.
	MetricsAddress string `json:"metricsAddress,omitempty"`
	// DisplayName names the server on the consent page (at most 100 characters).
	DisplayName string `json:"displayName,omitempty"`
	// ServiceDocumentation is a URL with human-readable documentation, published as
	// `service_documentation` in the metadata.
	ServiceDocumentation string `json:"serviceDocumentation,omitempty"`
	// ScopesSupported is the closed set of scopes clients may request, published as
	// `scopes_supported`. Default ["mcp"]. Each is an RFC 6749 §3.3 scope token.
	ScopesSupported []string `json:"scopesSupported"`
	// DefaultScopes are granted when a client's authorization request has no scope.
	// Each must be in ScopesSupported. Default ["mcp"].
	DefaultScopes []string `json:"defaultScopes"`
	// UpstreamScopes maps a scope of ScopesSupported to the extra upstream scopes a
	// token with it needs, e.g. "tools:write" → ["repo"]: tools behind that scope call
	// the upstream API with the user's upstream token, so that token must carry them.
	// A client that steps up to such a scope sends the user back to the upstream
	// provider for just the upstream scopes their stored upstream token lacks
	// (incremental consent); see docs/scopes.md. Default none.
	UpstreamScopes map[string][]string `json:"upstreamScopes,omitempty"`
	// CallbackPath is where the upstream provider sends the user back; the upstream
	// application must have Issuer+CallbackPath registered as its redirect URL (see
	// CallbackURL). Default "/oauth/callback".
	CallbackPath string `json:"callbackPath"`
	// AllowPKCEPlain accepts code_challenge_method=plain. OAuth 2.1 and the MCP
	// specification want S256 only; turn this on only for a legacy client that cannot
	// hash. Default false.
	AllowPKCEPlain bool `json:"allowPKCEPlain,omitempty"`

	// Upstream is the identity provider users log in with. Required.
	Upstream Upstream `json:"upstream"`
	// Tokens holds the lifetimes of what the server issues and keeps.
	Tokens Tokens `json:"tokens"`
	// DynamicRegistration controls RFC 7591 client registration.
	DynamicRegistration DynamicRegistration `json:"dynamicRegistration"`
	// DeviceAuthorization controls the device authorization grant (RFC 8628) for
	// command-line clients on machines without a browser. Off by default.
	DeviceAuthorization DeviceAuthorization `json:"deviceAuthorization,omitzero"`
	// ClientIDMetadataDocuments controls clients identified by an https URL whose
	// document the server fetches (draft-ietf-oauth-client-id-metadata-document).
	ClientIDMetadataDocuments ClientIDMetadataDocuments `json:"clientIDMetadataDocuments"`
	// Store selects where flow state, clients and tokens live.
	Store Store `json:"store"`
	// TLS, when set, makes the server terminate TLS itself. Leave it empty when an
	// ingress or a mesh terminates TLS in front of the server.
	TLS TLS `json:"tls"`
	// Secrets names the files that hold key material.
	Secrets SecretFiles `json:"secrets"`
	// Clients are pre-registered clients, fixed for the life of the process.
	Clients []Client `json:"clients,omitempty"`
	// ClientsFile is the path of a file of more pre-registered clients in the format
	// ParseClients reads. The server re-reads it when it changes, so clients can be
	// added without a restart; the operator writes MCPClient registrations there.
	ClientsFile string `json:"clientsFile,omitempty"`
	// ClientsSecret, when set, names a Kubernetes Secret holding more pre-registered
	// clients that the server watches through the API (see ClientsSecret).
	ClientsSecret *ClientsSecret `json:"clientsSecret,omitempty"`
	// Access says who may log in (users, e-mail addresses and domains, GitHub
	// organizations and teams, Google hosted domains, groups) and which scopes
	// membership grants. Empty: everyone the upstream authenticates may log in.
	Access Access `json:"access,omitzero"`
	// ClientPolicy says which clients may ask: metadata-document domains, redirect
	// URI patterns, the most scope of each kind of client, and approval of new
	// clients. Empty: every client the other sections allow.
	ClientPolicy ClientPolicy `json:"clientPolicy,omitzero"`
	// TrustedProxies are the addresses or CIDR networks of the reverse proxies in
	// front of the server (an ingress, a load balancer). A request from one of them
	// is attributed to the client address it names in X-Forwarded-For; anyone else's
	// X-Forwarded-For is ignored. Used to tell clients apart for rate limiting.
	TrustedProxies []string `json:"trustedProxies,omitempty"`

	// envSources maps a field path to the environment variable that set it, so that a
	// problem with an overridden value names where the value came from.
	envSources map[string]string
}

// UpstreamType names the kind of upstream identity provider.
type UpstreamType string

// Upstream types. The presets (github, google, linkedin, slack, dropbox) know their
// provider's endpoints; oidc discovers them from an issuer; oauth2 is told all three.
const (
	UpstreamGitHub   UpstreamType = "github"
	UpstreamGoogle   UpstreamType = "google"
	UpstreamLinkedIn UpstreamType = "linkedin"
	UpstreamSlack    UpstreamType = "slack"
	UpstreamDropbox  UpstreamType = "dropbox"
	UpstreamOIDC     UpstreamType = "oidc"
	UpstreamOAuth2   UpstreamType = "oauth2"
)

// UpstreamTypes lists every valid UpstreamType, in documentation order.
var UpstreamTypes = []UpstreamType{
	UpstreamGitHub, UpstreamGoogle, UpstreamLinkedIn, UpstreamSlack, UpstreamDropbox,
	UpstreamOIDC, UpstreamOAuth2,
}

// Upstream is the identity provider the server sends users to.
type Upstream struct {
	// Type is one of github, google, linkedin, slack, dropbox, oidc, oauth2. Required.
	Type UpstreamType `json:"type"`
	// ClientID is the server's client ID at the upstream provider. Required.
	ClientID string `json:"clientID"`
	// ClientSecretFile is the path of a file holding the upstream client secret. The
	// environment variable MCPAUTH_UPSTREAM_CLIENT_SECRET is the alternative; one of
	// the two is required.
	ClientSecretFile string `json:"clientSecretFile,omitempty"`
	// IssuerURL is the OpenID Connect issuer whose discovery document names the
	// endpoints. Required for oidc; not allowed for other types.
	IssuerURL string `json:"issuerURL,omitempty"`
	// AuthorizationURL is the upstream authorization endpoint. Required for oauth2;
	// not allowed for other types (presets know theirs, oidc discovers it).
	AuthorizationURL string `json:"authorizationURL,omitempty"`
	// TokenURL is the upstream token endpoint. Required for oauth2; not allowed for
	// other types.
	TokenURL string `json:"tokenURL,omitempty"`
	// UserInfoURL is the endpoint that returns the user's profile as JSON. Required
	// for oauth2; not allowed for other types.
	UserInfoURL string `json:"userInfoURL,omitempty"`
	// APIURL is the base URL of GitHub's REST API, where organization and team
	// memberships are read (and, unless userInfoURL is set, the user: APIURL/user).
	// github only; default https://api.github.com. GitHub Enterprise Server:
	// https://HOST/api/v3.
	APIURL string `json:"apiURL,omitempty"`
	// Scopes are requested from the upstream provider. Empty means the provider's
	// defaults (for example openid, email, profile for oidc).
	Scopes []string `json:"scopes,omitempty"`
	// UserIDField is the user-info (or ID token) field that holds the stable user ID.
	// Empty means the provider's default ("sub" for oidc and oauth2).
	UserIDField string `json:"userIDField,omitempty"`
	// InsecureAllowHTTP accepts http:// upstream URLs on hosts other than loopback,
	// for a development identity provider inside the cluster. Never in production:
	// the client secret and the user's tokens would cross the network in clear.
	InsecureAllowHTTP bool `json:"insecureAllowHTTP,omitempty"`
}

// Tokens holds lifetimes, written in YAML as Go durations ("15m", "24h"). Each is
// bounded (see Validate and docs/configuration.md) and can be overridden by its
// OAUTH_*_TTL environment variable, in seconds.
type Tokens struct {
	// AuthorizationCodeTTL is how long an authorization code can be redeemed.
	// Default 5m; between 10s and 10m (RFC 6749 §4.1.2 recommends at most 10 minutes).
	AuthorizationCodeTTL Duration `json:"authorizationCodeTTL"`
	// AccessTokenTTL is the lifetime of an access token. Default 15m; between 1m and 24h.
	AccessTokenTTL Duration `json:"accessTokenTTL"`
	// RefreshTokenTTL is the lifetime of a refresh token and of its grant. Default 24h;
	// between 10m and 8760h, and at least AccessTokenTTL.
	RefreshTokenTTL Duration `json:"refreshTokenTTL"`
	// ClientRegistrationTTL is how long a dynamically registered client stays valid.
	// Default 8760h (one year); between 1h and 87600h.
	ClientRegistrationTTL Duration `json:"clientRegistrationTTL"`
	// ExternalTokenTTL is how long the user's upstream tokens are kept server-side.
	// Default 24h; between 5m and 8760h.
	ExternalTokenTTL Duration `json:"externalTokenTTL"`
	// AccessTokenFormat is jwt (RFC 9068, signed with the key of
	// secrets.signingKeysFile) or opaque (verified by introspection). Default jwt.
	AccessTokenFormat AccessTokenFormat `json:"accessTokenFormat"`
	// RefreshReuseWindow is how long a rotated refresh token, presented again by the
	// same client, returns the same successor instead of revoking the grant: clients
	// that refresh twice in parallel keep their session. Reuse after the window
	// revokes the grant. 0 turns the window off. Default 30s; at most 5m.
	RefreshReuseWindow Duration `json:"refreshReuseWindow"`
}

// DynamicRegistration controls RFC 7591 dynamic client registration.
type DynamicRegistration struct {
	// Enabled serves POST /oauth/register. Default true. The MCP specification
	// deprecates dynamic registration in favour of metadata documents, but real
	// clients still depend on it.
	Enabled bool `json:"enabled"`
	// RateLimit bounds registrations per client address (see TrustedProxies); a
	// request over it gets 429 with Retry-After. Each replica counts on its own.
	RateLimit RateLimit `json:"rateLimit"`
	// IdleTTL removes a registration not used to obtain tokens for this long: its
	// expiry slides forward with each use, so the store drops it on its own. 0 turns
	// idle removal off (tokens.clientRegistrationTTL still applies). Default 720h
	// (30 days); between 1h and 87600h.
	IdleTTL Duration `json:"idleTTL"`
	// MaxPerSource bounds the live registrations of one client address (see
	// TrustedProxies; IPv6 by /64), counted in the store, so shared by every
	// replica; one more gets 429 with Retry-After. 0 turns the limit off. Default
	// 20; at most 100000.
	MaxPerSource int `json:"maxPerSource"`
}

// Defaults of DynamicRegistration's idle removal and per-source limit.
const (
	DefaultRegistrationIdleTTL      = 30 * 24 * time.Hour
	DefaultRegistrationMaxPerSource = 20
)

// DeviceAuthorization controls the device authorization grant (RFC 8628).
type DeviceAuthorization struct {
	// Enabled serves POST /oauth/device_authorization and the verification page
	// /oauth/device, and advertises both in the metadata. Clients whose grantTypes
	// include urn:ietf:params:oauth:grant-type:device_code may then use it. Default
	// false.
	Enabled bool `json:"enabled"`
	// CodeTTL is how long a device code and its user code stay valid. Default 10m;
	// between 1m and 1h.
	CodeTTL Duration `json:"codeTTL,omitempty"`
	// Interval is the polling interval the device is told to keep; a faster poll
	// gets slow_down. Default 5s; whole seconds between 1s and 60s.
	Interval Duration `json:"interval,omitempty"`
}

// Defaults of DeviceAuthorization.
const (
	DefaultDeviceCodeTTL  = 10 * time.Minute
	DefaultDeviceInterval = 5 * time.Second
)

// Defaults of DynamicRegistration.RateLimit: 30 registrations at once per client
// address, then one every 2 s.
const (
	DefaultRegistrationBurst = 30
	DefaultRegistrationEvery = 2 * time.Second
)

// RateLimit is a token bucket per client address.
type RateLimit struct {
	// Burst is how many requests an address may make at once; 0 turns the limit
	// off. Default 30; at most 10000.
	Burst int `json:"burst"`
	// Every is how long an address then waits for each further request. Default
	// 2s; between 10ms and 1h.
	Every Duration `json:"every"`
}

// ClientIDMetadataDocuments controls Client ID Metadata Document support.
type ClientIDMetadataDocuments struct {
	// Enabled accepts an https URL as client_id and fetches its document, and
	// advertises client_id_metadata_document_supported. Default true.
	Enabled bool `json:"enabled"`
	// AllowPrivateAddresses lets the server fetch documents from loopback and
	// private addresses. Development only: it opens the server to SSRF against the
	// network it runs in. Default false.
	AllowPrivateAddresses bool `json:"allowPrivateAddresses,omitempty"`
}

// StoreType names a store backend.
type StoreType string

// Store backends.
const (
	// StoreMemory keeps state in process memory: one replica, lost on restart.
	StoreMemory StoreType = "memory"
	// StoreRedis keeps state in Redis (standalone, Sentinel or Cluster).
	StoreRedis StoreType = "redis"
)

// Store selects the backend for flow state, clients and tokens.
type Store struct {
	// Type is memory (default) or redis. SESSION_PROVIDER overrides it.
	Type StoreType `json:"type"`
	// Redis configures the redis backend; required when Type is redis and not
	// allowed otherwise (unless the environment chose memory).
	Redis *Redis `json:"redis,omitempty"`
}

// Redis says how to reach Redis. Give either URL or Addresses.
type Redis struct {
	// URL is a redis:// or rediss:// URL (rediss means TLS) for a standalone server,
	// as accepted by go-redis ParseURL. It must not carry a password here; a password
	// in SESSION_REDIS_URL, which overrides this field, is accepted.
	URL string `json:"url,omitempty"`
	// Addresses are host:port pairs. One address is a standalone server; with
	// MasterName they are Sentinels; several without MasterName are a Redis Cluster.
	Addresses []string `json:"addresses,omitempty"`
	// MasterName is the Sentinel master set name; requires Addresses.
	MasterName string `json:"masterName,omitempty"`
	// Username is the Redis ACL user name.
	Username string `json:"username,omitempty"`
	// PasswordFile is the path of a file holding the Redis password; the environment
	// variable MCPAUTH_REDIS_PASSWORD is the alternative. Optional.
	PasswordFile string `json:"passwordFile,omitempty"`
	// DB is the database number; must be 0 for a Redis Cluster.
	DB int `json:"db,omitempty"`
	// TLS configures TLS to Redis.
	TLS RedisTLS `json:"tls,omitempty"`
	// KeyPrefix starts every key, isolating tenants that share one Redis (the origin's
	// sandbox id). Letters, digits, '.', '_' and '-'; at most 64. Default "mcpauth".
	KeyPrefix string `json:"keyPrefix,omitempty"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// Enabled uses TLS with Addresses. With URL, the scheme decides (rediss://).
	Enabled bool `json:"enabled,omitempty"`
	// CAFile is a PEM bundle of CAs to trust instead of the system roots.
	CAFile string `json:"caFile,omitempty"`
	// InsecureSkipVerify skips verification of the server certificate. Testing only.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// TLS is the server's own certificate. The server re-reads the files when they change.
type TLS struct {
	// CertFile is the PEM certificate chain; set together with KeyFile.
	CertFile string `json:"certFile,omitempty"`
	// KeyFile is the PEM private key; set together with CertFile.
	KeyFile string `json:"keyFile,omitempty"`
}

// SecretFiles names the files that hold the server's own key material.
type SecretFiles struct {
	// EncryptionKeyFile is the path of a file holding at least 32 random bytes,
	// base64-encoded (standard or URL alphabet, padding optional). The server derives
	// from it the key that encrypts upstream tokens at rest (AES-GCM) and the key
	// that hashes tokens and secrets (HMAC-SHA-256). MCPAUTH_ENCRYPTION_KEY is the
	// alternative. Required with the redis store; with the memory store a random key
	// is generated at start, which is harmless because nothing outlives the process.
	EncryptionKeyFile string `json:"encryptionKeyFile,omitempty"`
	// SigningKeysFile is the path of the JSON file of keys that sign JWT access tokens
	// (see SigningKeySet; the operator writes it). The server re-reads it when it
	// changes. Required with accessTokenFormat jwt and the redis store; with the memory
	// store a key is generated at start.
	SigningKeysFile string `json:"signingKeysFile,omitempty"`
	// AdminTokenFile is the path of a file holding the bearer token of the admin API
	// (revoking a user's, a client's or every grant). The admin API is off when empty.
	AdminTokenFile string `json:"adminTokenFile,omitempty"`
}

// Default returns a configuration with every default set. It lacks the required
// fields (issuer, upstream), so it does not validate on its own.
func Default() *Config {
	return &Config{
		ListenAddress:   DefaultListenAddress,
		ScopesSupported: []string{DefaultScope},
		DefaultScopes:   []string{DefaultScope},
		CallbackPath:    DefaultCallbackPath,
		Tokens: Tokens{
			AuthorizationCodeTTL:  Duration(DefaultAuthorizationCodeTTL),
			AccessTokenTTL:        Duration(DefaultAccessTokenTTL),
			RefreshTokenTTL:       Duration(DefaultRefreshTokenTTL),
			ClientRegistrationTTL: Duration(DefaultClientRegistrationTTL),
			ExternalTokenTTL:      Duration(DefaultExternalTokenTTL),
			AccessTokenFormat:     AccessTokenJWT,
			RefreshReuseWindow:    Duration(DefaultRefreshReuseWindow),
		},
		DynamicRegistration: DynamicRegistration{Enabled: true, RateLimit: RateLimit{
			Burst: DefaultRegistrationBurst, Every: Duration(DefaultRegistrationEvery),
		}, IdleTTL: Duration(DefaultRegistrationIdleTTL), MaxPerSource: DefaultRegistrationMaxPerSource},
		ClientIDMetadataDocuments: ClientIDMetadataDocuments{Enabled: true},
		DeviceAuthorization: DeviceAuthorization{
			CodeTTL: Duration(DefaultDeviceCodeTTL), Interval: Duration(DefaultDeviceInterval),
		},
		Store: Store{Type: StoreMemory},
	}
}

// TrustedProxyPrefixes returns TrustedProxies as networks, a lone address as a
// network of one. Entries that do not parse (Validate refuses them) are left out.
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := parseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// CallbackURL is the redirect URL to register at the upstream provider.
func (c *Config) CallbackURL() string {
	return c.Issuer + c.CallbackPath
}

// Normalize puts the configuration in the form the server uses: it removes trailing
// slashes from the issuer and fills the defaults of optional fields inside lists and
// optional sections (client auth methods and grant types, the Redis key prefix).
// Parse calls it; call it yourself on a Config built in Go before comparing it with
// what the server will run.
func (c *Config) Normalize() {
	c.Issuer = normalizeIssuer(c.Issuer)
	if c.Store.Redis != nil && c.Store.Redis.KeyPrefix == "" {
		c.Store.Redis.KeyPrefix = DefaultKeyPrefix
	}
	for i := range c.Clients {
		c.Clients[i].normalize()
	}
}

// normalizeIssuer removes trailing slashes but nothing else: "https://a.example/" and
// "https://a.example" name the same issuer to a user, while any other rewriting
// (case, default port) would break the byte comparison clients make.
func normalizeIssuer(s string) string {
	for len(s) > len("https://") && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

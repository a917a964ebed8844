package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProviderType is the kind of upstream identity provider.
// +kubebuilder:validation:Enum=github;google;linkedin;slack;dropbox;oidc;oauth2
type ProviderType string

// The upstream provider types. The named ones are presets over oidc or oauth2 with
// the provider's URLs, default scopes and user field filled in.
const (
	ProviderGitHub   ProviderType = "github"
	ProviderGoogle   ProviderType = "google"
	ProviderLinkedIn ProviderType = "linkedin"
	ProviderSlack    ProviderType = "slack"
	ProviderDropbox  ProviderType = "dropbox"
	ProviderOIDC     ProviderType = "oidc"
	ProviderOAuth2   ProviderType = "oauth2"
)

// OAuthProviderSpec names an upstream identity provider and describes the OAuth 2.1
// authorization server the operator runs in front of it.
//
// +kubebuilder:validation:XValidation:rule="self.type != 'oidc' || has(self.issuerURL)",message="issuerURL is required when type is oidc",fieldPath=".issuerURL"
// +kubebuilder:validation:XValidation:rule="self.type != 'oauth2' || (has(self.authorizationURL) && has(self.tokenURL) && has(self.userInfoURL))",message="authorizationURL, tokenURL and userInfoURL are required when type is oauth2"
// +kubebuilder:validation:XValidation:rule="(has(self.tokenStore) && self.tokenStore.type == 'redis') || !has(self.server.replicas) || self.server.replicas <= 1",message="server.replicas above 1 needs tokenStore.type redis: the memory store lives in one process",fieldPath=".server.replicas"
// +kubebuilder:validation:XValidation:rule="!has(self.issuerURL) || !isURL(self.issuerURL) || url(self.issuerURL).getScheme() != 'http' || url(self.issuerURL).getHostname() in ['localhost', '127.0.0.1', '::1'] || (has(self.insecureAllowHTTP) && self.insecureAllowHTTP)",message="must be an https URL, or http on a loopback host (insecureAllowHTTP allows http elsewhere)",fieldPath=".issuerURL"
// +kubebuilder:validation:XValidation:rule="!has(self.authorizationURL) || !isURL(self.authorizationURL) || url(self.authorizationURL).getScheme() != 'http' || url(self.authorizationURL).getHostname() in ['localhost', '127.0.0.1', '::1'] || (has(self.insecureAllowHTTP) && self.insecureAllowHTTP)",message="must be an https URL, or http on a loopback host (insecureAllowHTTP allows http elsewhere)",fieldPath=".authorizationURL"
// +kubebuilder:validation:XValidation:rule="!has(self.tokenURL) || !isURL(self.tokenURL) || url(self.tokenURL).getScheme() != 'http' || url(self.tokenURL).getHostname() in ['localhost', '127.0.0.1', '::1'] || (has(self.insecureAllowHTTP) && self.insecureAllowHTTP)",message="must be an https URL, or http on a loopback host (insecureAllowHTTP allows http elsewhere)",fieldPath=".tokenURL"
// +kubebuilder:validation:XValidation:rule="!has(self.userInfoURL) || !isURL(self.userInfoURL) || url(self.userInfoURL).getScheme() != 'http' || url(self.userInfoURL).getHostname() in ['localhost', '127.0.0.1', '::1'] || (has(self.insecureAllowHTTP) && self.insecureAllowHTTP)",message="must be an https URL, or http on a loopback host (insecureAllowHTTP allows http elsewhere)",fieldPath=".userInfoURL"
// +kubebuilder:validation:XValidation:rule="self.type == 'github' || !has(self.apiURL)",message="apiURL is only for type github",fieldPath=".apiURL"
// +kubebuilder:validation:XValidation:rule="self.type == 'github' || !has(self.access) || ((!has(self.access.allow) || (!has(self.access.allow.githubOrganizations) && !has(self.access.allow.githubTeams))) && (!has(self.access.scopeMappings) || self.access.scopeMappings.all(m, !has(m.members.githubOrganizations) && !has(m.members.githubTeams))))",message="GitHub organizations and teams can only be checked when type is github",fieldPath=".access"
// +kubebuilder:validation:XValidation:rule="self.type in ['google', 'oidc'] || !has(self.access) || ((!has(self.access.allow) || !has(self.access.allow.googleHostedDomains)) && (!has(self.access.scopeMappings) || self.access.scopeMappings.all(m, !has(m.members.googleHostedDomains))))",message="googleHostedDomains (the hd claim) need type google or oidc",fieldPath=".access"
// +kubebuilder:validation:XValidation:rule="self.type in ['oidc', 'oauth2'] || !has(self.access) || ((!has(self.access.allow) || !has(self.access.allow.groups)) && (!has(self.access.scopeMappings) || self.access.scopeMappings.all(m, !has(m.members.groups))))",message="groups need type oidc or oauth2: other providers send no groups claim",fieldPath=".access"
// +kubebuilder:validation:XValidation:rule="!has(self.access) || !has(self.access.scopeMappings) || self.access.scopeMappings.all(m, m.scopes.all(s, s in (has(self.server.scopesSupported) ? self.server.scopesSupported : ['mcp'])))",message="every scope of access.scopeMappings must be in server.scopesSupported",fieldPath=".access.scopeMappings"
// +kubebuilder:validation:XValidation:rule="!has(self.clientPolicy) || !has(self.clientPolicy.maxScopes) || [has(self.clientPolicy.maxScopes.preRegistered) ? self.clientPolicy.maxScopes.preRegistered : [], has(self.clientPolicy.maxScopes.dynamic) ? self.clientPolicy.maxScopes.dynamic : [], has(self.clientPolicy.maxScopes.metadataDocument) ? self.clientPolicy.maxScopes.metadataDocument : []].all(l, l.all(s, s in (has(self.server.scopesSupported) ? self.server.scopesSupported : ['mcp'])))",message="every scope of clientPolicy.maxScopes must be in server.scopesSupported",fieldPath=".clientPolicy.maxScopes"
type OAuthProviderSpec struct {
	// Type of the upstream provider: a preset (github, google, linkedin, slack,
	// dropbox), any OpenID Connect issuer (oidc), or any OAuth 2.0 server (oauth2).
	Type ProviderType `json:"type"`

	// ClientID is our client ID at the upstream provider.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	ClientID string `json:"clientID"`

	// ClientSecretRef is the Secret key holding our client secret at the upstream.
	// The operator passes it to the server by reference; it is never copied.
	ClientSecretRef SecretKeyReference `json:"clientSecretRef"`

	// IssuerURL is the OpenID Connect issuer; required for oidc, where discovery
	// finds the endpoints. https, or http on a loopback host for development.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http']",message="must be an https URL, or http on a loopback host"
	IssuerURL string `json:"issuerURL,omitempty"`

	// AuthorizationURL of the upstream; required for oauth2, an override for presets.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http']",message="must be an https URL, or http on a loopback host"
	AuthorizationURL string `json:"authorizationURL,omitempty"`

	// TokenURL of the upstream; required for oauth2, an override for presets.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http']",message="must be an https URL, or http on a loopback host"
	TokenURL string `json:"tokenURL,omitempty"`

	// UserInfoURL of the upstream; required for oauth2, an override for presets.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http']",message="must be an https URL, or http on a loopback host"
	UserInfoURL string `json:"userInfoURL,omitempty"`

	// InsecureAllowHTTP accepts http:// upstream URLs (issuerURL, authorizationURL,
	// tokenURL, userInfoURL) on hosts other than loopback, for a development identity
	// provider on the node or inside the cluster, which the server's pods cannot reach
	// on their own loopback. Never in production: our client secret and the users'
	// upstream tokens would cross the network in clear.
	// +optional
	InsecureAllowHTTP bool `json:"insecureAllowHTTP,omitempty"`
	// APIURL is GitHub's REST API, where organization and team memberships are read
	// (type github; default https://api.github.com; GitHub Enterprise Server:
	// https://HOST/api/v3).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="must be an https URL, or http on a loopback host"
	APIURL string `json:"apiURL,omitempty"`

	// Scopes requested from the upstream. Empty means the preset's defaults.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=atomic
	Scopes []string `json:"scopes,omitempty"`

	// UserIDField is the field of the user-info answer (or ID token claim) that names
	// the user, for example "sub", "id" or "login". Empty means the preset's default.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_.:-]+$`
	UserIDField string `json:"userIDField,omitempty"`

	// Server describes the authorization server the operator runs.
	Server ServerSpec `json:"server"`

	// Access says who may log in (users, e-mail addresses and domains, GitHub
	// organizations and teams, Google hosted domains, groups) and which scopes
	// membership grants. Empty: everyone the upstream provider authenticates.
	// +optional
	Access *AccessSpec `json:"access,omitempty"`

	// ClientPolicy says which clients may ask: metadata-document domains, redirect
	// URI patterns, the most scope of each kind of client, and approval of new
	// clients (docs/client-policy.md). Empty: every client the server allows.
	// +optional
	ClientPolicy *ClientPolicySpec `json:"clientPolicy,omitempty"`

	// TokenStore is where the server keeps clients, codes and tokens.
	// +optional
	// +kubebuilder:default={type: memory}
	TokenStore TokenStoreSpec `json:"tokenStore,omitzero"`
}

// ScopeUpstreamScopes maps one of our scopes to the upstream scopes it needs.
type ScopeUpstreamScopes struct {
	// Scope is one of server.scopesSupported.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
	Scope string `json:"scope"`
	// UpstreamScopes are asked of the upstream provider for it, e.g. ["repo"].
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
	// +listType=set
	UpstreamScopes []string `json:"upstreamScopes"`
}

// DeviceFlowSpec configures the device authorization grant (RFC 8628).
type DeviceFlowSpec struct {
	// Enabled serves /oauth/device_authorization and the verification page
	// /oauth/device, and advertises them in the metadata. MCPClients whose grantTypes
	// include urn:ietf:params:oauth:grant-type:device_code may then use it.
	// +optional
	// +kubebuilder:default=false
	Enabled bool `json:"enabled"`
}

// ServerSpec is the authorization server we run for the upstream provider.
// +kubebuilder:validation:XValidation:rule="!has(self.upstreamScopes) || self.upstreamScopes.all(u, u.scope in (has(self.scopesSupported) ? self.scopesSupported : ['mcp']))",message="each upstreamScopes[].scope must be one of scopesSupported",fieldPath=".upstreamScopes"
type ServerSpec struct {
	// URL is the server's public URL, its OAuth issuer: what MCP clients reach and
	// the upstream redirects back to. https, or http on a loopback host.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (url(self).getScheme() == 'https' || (url(self).getScheme() == 'http' && url(self).getHostname() in ['localhost', '127.0.0.1', '::1']))",message="must be an https URL, or http on a loopback host"
	// +kubebuilder:validation:XValidation:rule="!self.contains('?') && !self.contains('#')",message="an issuer has no query or fragment (RFC 8414)"
	URL string `json:"url"`

	// ScopesSupported are the scopes MCP clients may ask for, published in metadata.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
	// +listType=set
	ScopesSupported []string `json:"scopesSupported,omitempty"`

	// UpstreamScopes are the extra upstream scopes some scopes need: tools behind
	// tools:write call the upstream API with the user's upstream token, so that token
	// must carry, say, GitHub's repo. A client that steps up to such a scope sends
	// the user to the upstream provider again for only what their upstream token
	// lacks. See docs/scopes.md.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=scope
	UpstreamScopes []ScopeUpstreamScopes `json:"upstreamScopes,omitempty"`

	// ServiceDocumentation is a URL of human-readable documentation for the service.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http']",message="must be an http or https URL"
	ServiceDocumentation string `json:"serviceDocumentation,omitempty"`

	// DisplayName is shown to users on the consent page.
	// +optional
	// +kubebuilder:validation:MaxLength=100
	DisplayName string `json:"displayName,omitempty"`

	// CallbackPath is where the upstream returns the user.
	// +optional
	// +kubebuilder:default="/oauth/callback"
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^/[A-Za-z0-9/._~-]*$`
	CallbackPath string `json:"callbackPath,omitempty"`

	// Replicas of the server. More than one needs the redis token store.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	Replicas *int32 `json:"replicas,omitempty"`

	// Image of the server; empty means the operator's default.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// Resources of the server container. A memory limit also gives the server's Go
	// runtime a soft limit (GOMEMLIMIT) of 90% of it.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitzero"`

	// DynamicClientRegistration turns RFC 7591 registration at /oauth/register on or
	// off. Off, only MCPClients and Client ID Metadata Documents can log in.
	// +optional
	// +kubebuilder:default=true
	DynamicClientRegistration *bool `json:"dynamicClientRegistration,omitempty"`

	// Registration keeps dynamic registrations tidy: idle ones are removed, and one
	// client address may hold only so many.
	// +optional
	// +kubebuilder:default={}
	Registration RegistrationSpec `json:"registration,omitzero"`

	// DeviceFlow turns on the device authorization grant (RFC 8628) for command-line
	// MCPClients on machines without a browser. Off by default.
	// +optional
	DeviceFlow *DeviceFlowSpec `json:"deviceFlow,omitempty"`

	// TokenTTLs are the lifetimes of what the server issues.
	// +optional
	// +kubebuilder:default={}
	TokenTTLs TokenTTLs `json:"tokenTTLs,omitzero"`

	// AllowPKCEPlain permits the PKCE "plain" method. OAuth 2.1 clients use S256;
	// leave this off unless a client you must support cannot.
	// +optional
	AllowPKCEPlain bool `json:"allowPKCEPlain,omitempty"`

	// TLS makes the server serve HTTPS itself from a kubernetes.io/tls Secret (one
	// cert-manager issues, for example); rotated certificates are picked up live.
	// +optional
	TLS *ServerTLS `json:"tls,omitempty"`

	// AccessTokenFormat is jwt (RFC 9068 tokens that MCP servers and gateways verify
	// on their own against the server's JWKS) or opaque (random strings verified by
	// introspection).
	// +optional
	// +kubebuilder:default=jwt
	AccessTokenFormat AccessTokenFormat `json:"accessTokenFormat,omitempty"`

	// SigningKeyAlgorithm of the keys that sign JWT access tokens: ES256 (ECDSA
	// P-256, cheap to sign) or RS256 (RSA 2048, for verifiers that know no other).
	// Changing it rotates to a key of the new algorithm.
	// +optional
	// +kubebuilder:default=ES256
	SigningKeyAlgorithm SigningKeyAlgorithm `json:"signingKeyAlgorithm,omitempty"`

	// SigningKeyRotation is how long a signing key signs before the operator adds
	// its successor, at least 1h. The successor is published one access-token
	// lifetime before it signs, and the old key stays published until the last
	// token it signed has expired.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="must be at least 1h"
	SigningKeyRotation metav1.Duration `json:"signingKeyRotation,omitzero"`

	// RefreshReuseWindow is how long a rotated refresh token, presented again by the
	// same client, returns the same successor instead of revoking the grant, so that
	// clients refreshing twice in parallel keep their session. 0s turns it off; at
	// most 5m.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('5m')",message="must be between 0s and 5m"
	RefreshReuseWindow *metav1.Duration `json:"refreshReuseWindow,omitempty"`
}

// RegistrationSpec bounds dynamic registrations (RFC 7591).
type RegistrationSpec struct {
	// IdleTTL removes a registration not used to obtain tokens for this long (each
	// use moves its end). 0s turns idle removal off; otherwise 1h to 87600h.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || (duration(self) >= duration('1h') && duration(self) <= duration('87600h'))",message="must be 0s (off) or between 1h and 87600h"
	IdleTTL *metav1.Duration `json:"idleTTL,omitempty"`

	// MaxPerSource bounds the live registrations of one client address (IPv6 by
	// /64), shared by every replica; one more is answered 429. 0 turns the limit off.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	MaxPerSource *int32 `json:"maxPerSource,omitempty"`
}

// AccessTokenFormat is what an access token looks like on the wire.
// +kubebuilder:validation:Enum=jwt;opaque
type AccessTokenFormat string

// Access token formats.
const (
	AccessTokenJWT    AccessTokenFormat = "jwt"
	AccessTokenOpaque AccessTokenFormat = "opaque"
)

// SigningKeyAlgorithm is the JWS algorithm of the signing keys.
// +kubebuilder:validation:Enum=ES256;RS256
type SigningKeyAlgorithm string

// Signing key algorithms.
const (
	SigningES256 SigningKeyAlgorithm = "ES256"
	SigningRS256 SigningKeyAlgorithm = "RS256"
)

// RotateSigningKeyAnnotation on an OAuthProvider asks for a signing key rotation now:
// each new value adds a key, published at once, that signs one minute later, once the
// kubelet can have brought the Secret to every replica (the old one signs until then
// and stays published until its tokens expire). kubectl annotate oauthprovider X
// oauth.mcpauth.dev/rotate-signing-key="$(date +%s)" --overwrite
const RotateSigningKeyAnnotation = "oauth.mcpauth.dev/rotate-signing-key"

// TokenTTLs are lifetimes, as Go durations ("15m", "24h").
type TokenTTLs struct {
	// AuthorizationCode lifetime (OAUTH_AUTH_CODE_TTL), 10s to 10m.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('10m')",message="must be between 10s and 10m"
	AuthorizationCode metav1.Duration `json:"authorizationCode,omitzero"`

	// AccessToken lifetime (OAUTH_ACCESS_TOKEN_TTL), 1m to 24h.
	// +optional
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('24h')",message="must be between 1m and 24h"
	AccessToken metav1.Duration `json:"accessToken,omitzero"`

	// RefreshToken lifetime (OAUTH_REFRESH_TOKEN_TTL), 10m to 8760h, and at least
	// the access token's.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10m') && duration(self) <= duration('8760h')",message="must be between 10m and 8760h"
	RefreshToken metav1.Duration `json:"refreshToken,omitzero"`

	// ClientRegistration lifetime of dynamic registrations
	// (OAUTH_CLIENT_REGISTRATION_TTL), 1h to 87600h.
	// +optional
	// +kubebuilder:default="8760h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h') && duration(self) <= duration('87600h')",message="must be between 1h and 87600h"
	ClientRegistration metav1.Duration `json:"clientRegistration,omitzero"`

	// ExternalToken is how long upstream tokens are kept (OAUTH_EXTERNAL_TOKEN_TTL),
	// 5m to 8760h.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5m') && duration(self) <= duration('8760h')",message="must be between 5m and 8760h"
	ExternalToken metav1.Duration `json:"externalToken,omitzero"`
}

// ServerTLS names the certificate the server serves.
type ServerTLS struct {
	// SecretName of a kubernetes.io/tls Secret with tls.crt and tls.key.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
}

// TokenStoreType selects the token store backend.
// +kubebuilder:validation:Enum=memory;redis
type TokenStoreType string

// Token store backends.
const (
	TokenStoreMemory TokenStoreType = "memory"
	TokenStoreRedis  TokenStoreType = "redis"
)

// TokenStoreSpec selects and configures the token store.
// +kubebuilder:validation:XValidation:rule="self.type != 'redis' || has(self.redis)",message="redis settings are required when type is redis",fieldPath=".redis"
// +kubebuilder:validation:XValidation:rule="self.type == 'redis' || !has(self.redis)",message="redis settings are only allowed when type is redis"
type TokenStoreSpec struct {
	// Type of the store: memory (one replica, tokens lost on restart) or redis.
	// +kubebuilder:default=memory
	Type TokenStoreType `json:"type"`

	// Redis connection settings, for type redis.
	// +optional
	Redis *RedisSpec `json:"redis,omitempty"`
}

// RedisSpec is how the server reaches Redis: one address for a standalone server,
// Sentinel addresses with a master name, or several Cluster node addresses.
type RedisSpec struct {
	// Addresses as host:port.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$`
	// +listType=atomic
	Addresses []string `json:"addresses"`

	// MasterName of the Sentinel-monitored master; set it to use Sentinel.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	MasterName string `json:"masterName,omitempty"`

	// Username for Redis ACLs.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Username string `json:"username,omitempty"`

	// PasswordSecretRef is the Secret key holding the Redis password.
	// +optional
	PasswordSecretRef *SecretKeyReference `json:"passwordSecretRef,omitempty"`

	// DB is the database number (standalone and Sentinel only).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=255
	DB int32 `json:"db,omitempty"`

	// TLS to Redis.
	// +optional
	TLS *RedisTLS `json:"tls,omitempty"`

	// KeyPrefix isolates this provider's keys (the tenant): letters, digits, '.', '_'
	// and '-' (no ':' or braces, which would collide with the store's key separator
	// and Redis Cluster hash tags). Defaults to <namespace>.<name> of the OAuthProvider.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._-]+$`
	KeyPrefix string `json:"keyPrefix,omitempty"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// Enabled turns TLS on.
	Enabled bool `json:"enabled"`

	// CASecretRef is a Secret key with the PEM CA bundle to trust; empty means the
	// system roots.
	// +optional
	CASecretRef *SecretKeyReference `json:"caSecretRef,omitempty"`

	// InsecureSkipVerify disables certificate verification. For tests only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// OAuthProviderStatus is what the operator observed.
type OAuthProviderStatus struct {
	// Conditions: Ready (the summary), Available, Progressing, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// URL is the issuer MCP clients use.
	// +optional
	URL string `json:"url,omitempty"`

	// ReadyReplicas of the server.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// RegisteredClients is how many MCPClients are registered with this server.
	// +optional
	RegisteredClients int32 `json:"registeredClients,omitempty"`

	// DynamicClients is how many dynamic registrations (RFC 7591) are live, as the
	// server's admin API last answered; absent while unknown (no ready server, or
	// its admin API could not be read).
	// +optional
	DynamicClients *int32 `json:"dynamicClients,omitempty"`

	// SigningKeys describes the keys in the Secret <name>-authserver-signing-keys
	// that sign JWT access tokens. No key material is ever in status.
	// +optional
	SigningKeys *SigningKeysStatus `json:"signingKeys,omitempty"`
}

// SigningKeysStatus is what the operator last wrote into the signing keys Secret.
type SigningKeysStatus struct {
	// ActiveKeyID is the kid of the key that signs now.
	// +optional
	ActiveKeyID string `json:"activeKeyID,omitempty"`

	// NextRotation is when the operator adds the next key (which then signs one
	// access-token lifetime later).
	// +optional
	NextRotation metav1.Time `json:"nextRotation,omitzero"`

	// PublishedKeyIDs are the kids in the JWKS: the active key, a successor waiting
	// to sign, and retired keys whose tokens may not have expired yet.
	// +optional
	// +listType=atomic
	PublishedKeyIDs []string `json:"publishedKeyIDs,omitempty"`

	// LastRotationRequest is the last value of the annotation
	// oauth.mcpauth.dev/rotate-signing-key that was acted on; each value rotates once.
	// +optional
	LastRotationRequest string `json:"lastRotationRequest,omitempty"`
}

// OAuthProvider runs an OAuth 2.1 authorization server for MCP clients that brokers
// login to an upstream identity provider.
//
// Its name must be a DNS label of at most 52 characters: the server's Service is
// named <name>-authserver, and a Service name is a DNS label of at most 63.
//
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="the name must be a DNS label of at most 52 characters starting with a letter: the server's Service is named <name>-authserver"
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=oap;oauthprov,categories=mcpauth
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Clients",type=integer,JSONPath=`.status.registeredClients`
// +kubebuilder:printcolumn:name="Dynamic",type=integer,JSONPath=`.status.dynamicClients`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OAuthProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   OAuthProviderSpec   `json:"spec"`
	Status OAuthProviderStatus `json:"status,omitempty"`
}

// OAuthProviderList is a list of OAuthProviders.
//
// +kubebuilder:object:root=true
type OAuthProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OAuthProvider `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OAuthProvider{}, &OAuthProviderList{})
}

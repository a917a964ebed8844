package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// FieldError is one problem with one field. Validate, Parse and ParseClients return
// them joined with errors.Join; unwrap with `interface{ Unwrap() []error }` to get the
// list, or errors.As to get the first.
type FieldError struct {
	// Field is the path of the field, as written in YAML ("upstream.issuerURL",
	// "clients[2].redirectURIs[0]").
	Field string
	// Detail says what is wrong, in a phrase that follows "field: ".
	Detail string
}

// Error returns "field: detail".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Detail
	}
	return e.Field + ": " + e.Detail
}

// Bounds of each lifetime, inclusive; docs/configuration.md repeats them.
var ttlBounds = []struct {
	field    string
	get      func(*Tokens) Duration
	min, max time.Duration
}{
	// RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is
	// RECOMMENDED." Below 10s a user on a slow link cannot finish the redirect.
	{"tokens.authorizationCodeTTL", func(t *Tokens) Duration { return t.AuthorizationCodeTTL }, 10 * time.Second, 10 * time.Minute},
	// Access tokens cannot be recalled from MCP servers that cache introspection, so
	// keep them short. Under a minute clients spend their time refreshing; the floor
	// is lower than that only so that tests can watch a token expire (the CRD keeps
	// one minute).
	{"tokens.accessTokenTTL", func(t *Tokens) Duration { return t.AccessTokenTTL }, 5 * time.Second, 24 * time.Hour},
	{"tokens.refreshTokenTTL", func(t *Tokens) Duration { return t.RefreshTokenTTL }, 10 * time.Minute, 365 * 24 * time.Hour},
	{"tokens.clientRegistrationTTL", func(t *Tokens) Duration { return t.ClientRegistrationTTL }, time.Hour, 10 * 365 * 24 * time.Hour},
	{"tokens.externalTokenTTL", func(t *Tokens) Duration { return t.ExternalTokenTTL }, 5 * time.Minute, 365 * 24 * time.Hour},
}

// fixedPaths may not be used as the callback path.
var fixedPaths = []string{
	PathAuthorize, PathToken, PathRegister, PathIntrospect, PathRevoke,
	PathJWKS, PathRevocations, PathHealthz, PathReadyz, PathMetrics,
}

// validator collects problems, noting the environment variable behind a value when
// one set it, so the user looks in the right place.
type validator struct {
	env  map[string]string
	errs []error
}

func (v *validator) addf(field, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if src, ok := v.env[field]; ok {
		detail += " (set by " + src + ")"
	}
	v.errs = append(v.errs, &FieldError{Field: field, Detail: detail})
}

// Validate checks every field and returns all problems joined, each a *FieldError
// naming its field path. It does not read files or the environment: whether secrets
// can be read is ResolveSecrets's business.
func (c *Config) Validate() error {
	v := &validator{env: c.envSources}
	c.validateServer(v)
	c.validateUpstream(v)
	c.validateTokens(v)
	c.validateStore(v)
	c.validateSigningKeys(v)
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.addf("tls", "set both certFile and keyFile, or neither")
	}
	validateClientList(v, c.Clients)
	c.checkClientScopes(v, c.Clients)
	c.validateClientsSecret(v)
	c.validateAbuseLimits(v)
	c.validateAccess(v)
	c.validateClientPolicy(v)
	return errors.Join(v.errs...)
}

func (c *Config) validateServer(v *validator) {
	if msg := checkIssuer(c.Issuer); msg != "" {
		v.addf("issuer", "%s", msg)
	}
	listenPort := -1
	if c.ListenAddress == "" {
		v.addf("listenAddress", "required")
	} else if p, msg := checkHostPort(c.ListenAddress); msg != "" {
		v.addf("listenAddress", "%s", msg)
	} else {
		listenPort = p
	}
	if c.MetricsAddress != "" {
		if p, msg := checkHostPort(c.MetricsAddress); msg != "" {
			v.addf("metricsAddress", "%s", msg)
		} else if p != 0 && p == listenPort {
			v.addf("metricsAddress", "uses the port of listenAddress; leave it empty to serve /metrics there")
		}
	}
	if msg := checkDisplayText(c.DisplayName); msg != "" {
		v.addf("displayName", "%s", msg)
	}
	if c.ServiceDocumentation != "" {
		if u, err := url.Parse(c.ServiceDocumentation); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.addf("serviceDocumentation", "must be an absolute http(s) URL")
		}
	}
	supported := map[string]bool{}
	for i, s := range c.ScopesSupported {
		f := fmt.Sprintf("scopesSupported[%d]", i)
		if !validScope(s) {
			v.addf(f, "%q is not a valid scope (RFC 6749 §3.3: printable ASCII, no spaces, quotes or backslashes)", s)
		} else if supported[s] {
			v.addf(f, "duplicate scope %q", s)
		}
		supported[s] = true
	}
	for i, s := range c.DefaultScopes {
		if !supported[s] {
			v.addf(fmt.Sprintf("defaultScopes[%d]", i), "%q is not in scopesSupported", s)
		}
	}
	for _, scope := range slices.Sorted(maps.Keys(c.UpstreamScopes)) {
		f := "upstreamScopes." + scope
		switch ups := c.UpstreamScopes[scope]; {
		case !supported[scope]:
			v.addf(f, "%q is not in scopesSupported", scope)
		case len(ups) == 0:
			v.addf(f, "lists no upstream scope")
		default:
			for i, u := range ups {
				if !validScope(u) {
					v.addf(fmt.Sprintf("%s[%d]", f, i), "%q is not a valid scope (RFC 6749 §3.3)", u)
				}
			}
		}
	}
	c.validateCallbackPath(v)
}

func (c *Config) validateCallbackPath(v *validator) {
	p := c.CallbackPath
	switch {
	case p == "":
		v.addf("callbackPath", "required")
	case !strings.HasPrefix(p, "/"):
		v.addf("callbackPath", "must start with /")
	case strings.ContainsAny(p, "?#") || strings.ContainsFunc(p, unicode.IsSpace):
		v.addf("callbackPath", "must be a plain path, without query, fragment or spaces")
	case path.Clean(p) != p:
		v.addf("callbackPath", "must be a clean path (no //, . or .. segments, no trailing /)")
	case strings.HasPrefix(p, "/.well-known/"):
		v.addf("callbackPath", "must not be under /.well-known/")
	default:
		for _, f := range fixedPaths {
			if p == f {
				v.addf("callbackPath", "%s is a fixed endpoint of the server", p)
			}
		}
	}
}

func (c *Config) validateUpstream(v *validator) {
	u := &c.Upstream
	known := false
	for _, t := range UpstreamTypes {
		known = known || u.Type == t
	}
	switch {
	case u.Type == "":
		v.addf("upstream.type", "required (one of %s)", upstreamTypeList())
	case !known:
		v.addf("upstream.type", "%q is not one of %s", u.Type, upstreamTypeList())
	}
	if u.ClientID == "" {
		v.addf("upstream.clientID", "required")
	}
	// The upstream package's rules: oidc needs its issuer and oauth2 its three
	// endpoints; presets may override what they know (the OIDC presets their issuer,
	// every type its endpoints), as may oidc its discovered endpoints.
	oidcBased := u.Type == UpstreamOIDC || u.Type == UpstreamGoogle || u.Type == UpstreamLinkedIn || u.Type == UpstreamSlack
	const issuerOnly = "only oidc and the OIDC presets google, linkedin and slack have an issuer"
	urls := []struct {
		field, value      string
		required, allowed bool
		why               string
	}{
		{"upstream.issuerURL", u.IssuerURL, u.Type == UpstreamOIDC, oidcBased, issuerOnly},
		{"upstream.authorizationURL", u.AuthorizationURL, u.Type == UpstreamOAuth2, true, ""},
		{"upstream.tokenURL", u.TokenURL, u.Type == UpstreamOAuth2, true, ""},
		{"upstream.userInfoURL", u.UserInfoURL, u.Type == UpstreamOAuth2, true, ""},
		{"upstream.apiURL", u.APIURL, false, u.Type == UpstreamGitHub, "only github reads memberships from an API"},
	}
	for _, f := range urls {
		switch {
		case f.value == "" && f.required:
			v.addf(f.field, "required when upstream.type is %q", u.Type)
		case f.value != "" && !f.allowed && known:
			// Refused rather than ignored: a URL the provider never uses is a
			// misunderstanding the user should hear about.
			v.addf(f.field, "not allowed when upstream.type is %q (%s)", u.Type, f.why)
		case f.value != "":
			if msg := checkUpstreamURL(f.value, u.InsecureAllowHTTP); msg != "" {
				v.addf(f.field, "%s", msg)
			}
		}
	}
	for i, s := range u.Scopes {
		if !validScope(s) {
			v.addf(fmt.Sprintf("upstream.scopes[%d]", i), "%q is not a valid scope", s)
		}
	}
	if strings.ContainsFunc(u.UserIDField, unicode.IsSpace) {
		v.addf("upstream.userIDField", "must not contain spaces")
	}
}

func upstreamTypeList() string {
	s := make([]string, len(UpstreamTypes))
	for i, t := range UpstreamTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func (c *Config) validateTokens(v *validator) {
	for _, b := range ttlBounds {
		d := b.get(&c.Tokens).Duration()
		if d < b.min || d > b.max {
			v.addf(b.field, "%s is outside [%s, %s]", Duration(d), Duration(b.min), Duration(b.max))
		}
	}
	if c.Tokens.RefreshTokenTTL < c.Tokens.AccessTokenTTL {
		v.addf("tokens.refreshTokenTTL", "%s is shorter than tokens.accessTokenTTL (%s)",
			c.Tokens.RefreshTokenTTL, c.Tokens.AccessTokenTTL)
	}
	switch c.Tokens.AccessTokenFormat {
	case AccessTokenJWT, AccessTokenOpaque:
	default:
		v.addf("tokens.accessTokenFormat", "%q is not one of jwt, opaque", c.Tokens.AccessTokenFormat)
	}
	if w := c.Tokens.RefreshReuseWindow.Duration(); w < 0 || w > 5*time.Minute {
		v.addf("tokens.refreshReuseWindow", "%s is outside [0s, 5m]", c.Tokens.RefreshReuseWindow)
	}
}

func (c *Config) validateStore(v *validator) {
	_, typeFromEnv := c.envSources["store.type"]
	switch c.Store.Type {
	case StoreMemory:
		// A redis section is refused, not ignored, unless the environment picked the
		// memory store on purpose (running a production config locally).
		_, urlFromEnv := c.envSources["store.redis.url"]
		if c.Store.Redis != nil && !typeFromEnv && !urlFromEnv {
			v.addf("store.redis", "set, but store.type is %q; set store.type to redis or remove it", c.Store.Type)
		}
	case StoreRedis:
		if c.Store.Redis == nil {
			v.addf("store.redis", "required when store.type is \"redis\" (or set %s)", EnvSessionRedisURL)
			return
		}
		c.validateRedis(v, c.Store.Redis)
	case "":
		v.addf("store.type", "required (memory or redis)")
	default:
		v.addf("store.type", "%q is not one of memory, redis", c.Store.Type)
	}
}

// validateSigningKeys requires the signing keys file where replicas share a store:
// a JWT signed by one replica must verify at every other, so they cannot each make up
// a key of their own as a lone memory-store server does.
func (c *Config) validateSigningKeys(v *validator) {
	if c.Store.Type != StoreRedis || c.Secrets.SigningKeysFile != "" {
		return
	}
	switch c.Tokens.AccessTokenFormat {
	case AccessTokenJWT:
		v.addf("secrets.signingKeysFile", "required when store.type is redis and tokens.accessTokenFormat is jwt "+
			"(every replica must sign with the same keys); set it, or set tokens.accessTokenFormat to opaque")
	}
}

func (c *Config) validateRedis(v *validator, r *Redis) {
	_, urlFromEnv := c.envSources["store.redis.url"]
	switch {
	case r.URL == "" && len(r.Addresses) == 0:
		v.addf("store.redis", "set url or addresses")
	case r.URL != "" && len(r.Addresses) > 0:
		v.addf("store.redis.url", "set url or addresses, not both")
	case r.URL != "":
		u, err := url.Parse(r.URL)
		switch {
		case err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "":
			v.addf("store.redis.url", "must be a redis:// or rediss:// URL with a host")
		case !urlFromEnv && hasPassword(u):
			// The YAML never holds a secret; SESSION_REDIS_URL may, as in the origin.
			v.addf("store.redis.url", "must not contain a password; use store.redis.passwordFile or MCPAUTH_REDIS_PASSWORD")
		case u.Scheme == "redis" && r.TLS.Enabled:
			v.addf("store.redis.tls.enabled", "with url, TLS is chosen by the scheme: use rediss://")
		}
		if r.MasterName != "" {
			v.addf("store.redis.masterName", "requires addresses (the Sentinels), not url")
		}
		if err == nil && r.DB != 0 && strings.Trim(u.Path, "/") != "" {
			v.addf("store.redis.db", "the url already names a database")
		}
	default:
		for i, a := range r.Addresses {
			if _, msg := checkHostPort(a); msg != "" {
				v.addf(fmt.Sprintf("store.redis.addresses[%d]", i), "%s", msg)
			} else if h, _, _ := net.SplitHostPort(a); h == "" {
				v.addf(fmt.Sprintf("store.redis.addresses[%d]", i), "needs a host")
			}
		}
		if len(r.Addresses) > 1 && r.MasterName == "" && r.DB != 0 {
			v.addf("store.redis.db", "must be 0 with several addresses and no masterName (Redis Cluster has only database 0)")
		}
	}
	if r.DB < 0 {
		v.addf("store.redis.db", "must not be negative")
	}
	if r.TLS.CAFile != "" && r.TLS.InsecureSkipVerify {
		v.addf("store.redis.tls.caFile", "pointless with insecureSkipVerify")
	}
	if r.KeyPrefix != "" && !validKeyPrefix(r.KeyPrefix) {
		v.addf("store.redis.keyPrefix", "%q must be 1 to 64 letters, digits, '.', '_' or '-'", r.KeyPrefix)
	}
}

func hasPassword(u *url.URL) bool {
	if u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	// go-redis reads "redis://secret@host" (no colon) as a password too.
	return ok || u.User.Username() != ""
}

// validKeyPrefix keeps prefixes to characters that cannot form a Redis Cluster hash
// tag ({...}) or collide with the ':' separator the store appends.
func validKeyPrefix(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// checkIssuer returns what is wrong with an issuer, or "".
func checkIssuer(s string) string {
	if s == "" {
		return "required"
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "not a valid URL"
	case strings.ContainsFunc(s, unicode.IsSpace):
		return "must not contain spaces"
	case u.Scheme != "https" && u.Scheme != "http":
		return "must be an https URL"
	case u.Host == "" || u.Hostname() == "":
		return "must have a host"
	case u.User != nil:
		return "must not contain user info"
	case u.RawQuery != "" || u.ForceQuery:
		return "must not have a query (RFC 8414 §2)"
	case strings.Contains(s, "#"):
		return "must not have a fragment (RFC 8414 §2)"
	case u.Scheme == "http" && !IsLoopbackHost(u.Hostname()):
		return "must be https; http is allowed only on a loopback host (localhost, 127.0.0.1, [::1])"
	}
	return ""
}

func checkUpstreamURL(s string, allowHTTP bool) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return "must be an absolute URL"
	case u.Scheme == "https":
	case u.Scheme == "http" && (allowHTTP || IsLoopbackHost(u.Hostname())):
	case u.Scheme == "http":
		return "must be https (http only on loopback, or with upstream.insecureAllowHTTP)"
	default:
		return "must be an https URL"
	}
	if strings.Contains(s, "#") {
		return "must not have a fragment"
	}
	return ""
}

// checkHostPort checks a listen or dial address and returns its port.
func checkHostPort(s string) (int, string) {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return 0, fmt.Sprintf("%q is not host:port", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Sprintf("%q has no valid port number", s)
	}
	return p, ""
}

// IsLoopbackHost reports whether h is localhost or a loopback address (RFC 8252 §7.3).
func IsLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// validScope reports whether s is an RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b == 0x22 || b == 0x5C || b > 0x7E {
			return false
		}
	}
	return true
}

// checkDisplayText checks a name shown to users on the consent page.
func checkDisplayText(s string) string {
	if len([]rune(s)) > 100 {
		return "longer than 100 characters"
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return "must not contain control characters"
	}
	return ""
}

// validateAbuseLimits checks the registration rate limit and the trusted proxies.
func (c *Config) validateAbuseLimits(v *validator) {
	rl := c.DynamicRegistration.RateLimit
	if rl.Burst < 0 || rl.Burst > 10000 {
		v.addf("dynamicRegistration.rateLimit.burst", "%d is outside [0, 10000] (0 turns the limit off)", rl.Burst)
	}
	if d := rl.Every.Duration(); rl.Burst > 0 && (d < 10*time.Millisecond || d > time.Hour) {
		v.addf("dynamicRegistration.rateLimit.every", "%s is outside [10ms, 1h]", rl.Every)
	}
	if d := c.DynamicRegistration.IdleTTL.Duration(); d != 0 && (d < time.Hour || d > 10*365*24*time.Hour) {
		v.addf("dynamicRegistration.idleTTL", "%s is outside [1h, 87600h] (0 turns idle removal off)", c.DynamicRegistration.IdleTTL)
	}
	if n := c.DynamicRegistration.MaxPerSource; n < 0 || n > 100000 {
		v.addf("dynamicRegistration.maxPerSource", "%d is outside [0, 100000] (0 turns the limit off)", n)
	}
	if d := c.DeviceAuthorization.CodeTTL.Duration(); d < time.Minute || d > time.Hour {
		v.addf("deviceAuthorization.codeTTL", "%s is outside [1m, 1h]", c.DeviceAuthorization.CodeTTL)
	}
	if d := c.DeviceAuthorization.Interval.Duration(); d < time.Second || d > time.Minute || d%time.Second != 0 {
		v.addf("deviceAuthorization.interval", "%s is not a whole number of seconds in [1s, 60s]", c.DeviceAuthorization.Interval)
	}
	for i, s := range c.TrustedProxies {
		if _, err := parseProxy(s); err != nil {
			v.addf(fmt.Sprintf("trustedProxies[%d]", i), "%q is not an IP address or CIDR network", s)
		}
	}
}

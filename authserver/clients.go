package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// Client authentication methods (RFC 7591 §2).
const (
	AuthMethodNone  = "none"
	AuthMethodBasic = "client_secret_basic"
	AuthMethodPost  = "client_secret_post"
	grantAuthCode   = "authorization_code"
	grantRefresh    = "refresh_token"
	// grantTokenExchange is RFC 8693 token exchange (§2.1).
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// grantClientCredentials is RFC 6749 §4.4: a confidential client acting for itself.
	grantClientCredentials = "client_credentials"
	// grantDeviceCode is the RFC 8628 device authorization grant (§3.4).
	grantDeviceCode  = "urn:ietf:params:oauth:grant-type:device_code"
	responseTypeCode = "code"
)

// Application types (OpenID Connect Registration §2, sent by MCP clients in RFC 7591
// registrations).
const (
	AppTypeWeb    = "web"
	AppTypeNative = "native"
)

// StaticClient is a pre-registered client: from configuration now, from MCPClient
// resources later.
type StaticClient struct {
	// ID is the client_id.
	ID string
	// Secret is the client secret in clear, as mounted from a Kubernetes Secret.
	// Empty for a public client, or when SecretSHA256 is given instead.
	Secret string
	// SecretSHA256 is the SHA-256 digest of the client secret, for configurations that
	// hold only the digest (config.Client.SecretDigest). Secrets are 256-bit random
	// strings, so an unsalted fast hash is enough; presented secrets are hashed and
	// compared in constant time.
	SecretSHA256 []byte
	// Name is shown on the consent page. Default: the ID.
	Name string
	// RedirectURIs are compared exactly (loopback http URIs with any port, RFC 8252 §7.3).
	RedirectURIs []string
	// GrantTypes the client may use. Default: authorization_code and refresh_token.
	// client_credentials (RFC 6749 §4.4) needs a confidential client; the device
	// code grant (RFC 8628) works also for public ones.
	GrantTypes []string
	// TokenEndpointAuthMethod: none, client_secret_basic or client_secret_post.
	// Default: none without a Secret, client_secret_basic with one.
	TokenEndpointAuthMethod string
	// Scopes the client may be granted; empty means all of Options.ScopesSupported.
	Scopes []string
	// Trusted clients skip the consent page. Only mark clients you control.
	Trusted bool
	// IntrospectUpstream lets this client, when it introspects a token, see the user's
	// upstream access token (an MCP server that calls the upstream API for the user).
	// No other caller ever sees it.
	IntrospectUpstream bool
	// Resources are the RFC 8707 resource URIs this client serves: an MCP server's own
	// URL. A confidential client with resources may exchange (RFC 8693) an access
	// token bound to one of them for the user's upstream token; no other caller may.
	Resources []string
}

// ClientRegistry finds pre-registered clients. The operator can feed it from MCPClient
// resources; StaticClients is the in-memory implementation.
type ClientRegistry interface {
	// Lookup returns the client with this ID and true, or false when there is none.
	Lookup(ctx context.Context, id string) (StaticClient, bool, error)
}

// StaticClients is a ClientRegistry held in memory whose contents can be replaced at run
// time (a watcher calls Replace when MCPClient resources change). Safe for concurrent
// use.
type StaticClients struct {
	mu      sync.RWMutex
	clients map[string]StaticClient
	// approved are dynamic and metadata-document client IDs approved in the registry
	// (see ApprovalRegistry).
	approved map[string]bool
}

// NewStaticClients returns a registry holding clients, after validating them.
func NewStaticClients(clients ...StaticClient) (*StaticClients, error) {
	r := &StaticClients{}
	if err := r.Replace(clients); err != nil {
		return nil, err
	}
	return r, nil
}

// Replace swaps the whole set of clients atomically. On a validation error the previous
// set stays in place.
func (r *StaticClients) Replace(clients []StaticClient) error {
	m := make(map[string]StaticClient, len(clients))
	var errs []error
	for _, c := range clients {
		c = c.withDefaults()
		if err := c.validate(); err != nil {
			errs = append(errs, fmt.Errorf("client %q: %w", c.ID, err))
			continue
		}
		if _, dup := m[c.ID]; dup {
			errs = append(errs, fmt.Errorf("client %q: duplicate ID", c.ID))
		}
		m[c.ID] = c
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.mu.Lock()
	r.clients = m
	r.mu.Unlock()
	return nil
}

// Lookup implements ClientRegistry.
func (r *StaticClients) Lookup(_ context.Context, id string) (StaticClient, bool, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.clients[id]
	return c, ok, nil
}

// Len returns how many clients the registry holds (the static kind of
// mcpauth_registered_clients).
func (r *StaticClients) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.clients)
}

func (c StaticClient) withDefaults() StaticClient {
	if c.Name == "" {
		c.Name = c.ID
	}
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{grantAuthCode, grantRefresh}
	}
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = AuthMethodNone
		if c.hasSecret() {
			c.TokenEndpointAuthMethod = AuthMethodBasic
		}
	}
	return c
}

func (c StaticClient) hasSecret() bool { return c.Secret != "" || len(c.SecretSHA256) > 0 }

func (c StaticClient) validate() error {
	if c.ID == "" {
		return errors.New("empty ID")
	}
	if len(c.RedirectURIs) == 0 && slices.Contains(c.GrantTypes, grantAuthCode) {
		return errors.New("no redirect URIs")
	}
	for _, u := range c.RedirectURIs {
		if err := validateRedirectURI(u, AppTypeNative); err != nil {
			return err
		}
	}
	for _, g := range c.GrantTypes {
		switch g {
		case grantAuthCode, grantRefresh, grantDeviceCode:
		case grantClientCredentials:
			if !c.hasSecret() {
				return errors.New("only a confidential client may use client_credentials")
			}
		default:
			return fmt.Errorf("unsupported grant type %q", g)
		}
	}
	for _, r := range c.Resources {
		if _, ok := normalizeResource(r); !ok {
			return fmt.Errorf("resource %q is not an absolute URI without a fragment (RFC 8707)", r)
		}
	}
	if len(c.Resources) > 0 && !c.hasSecret() {
		return errors.New("only a confidential client may serve resources (token exchange)")
	}
	if c.Secret != "" && len(c.SecretSHA256) > 0 {
		return errors.New("give Secret or SecretSHA256, not both")
	}
	if n := len(c.SecretSHA256); n > 0 && n != sha256.Size {
		return fmt.Errorf("SecretSHA256 is %d bytes, want %d", n, sha256.Size)
	}
	switch c.TokenEndpointAuthMethod {
	case AuthMethodNone:
		if c.hasSecret() {
			return errors.New("a public client (auth method none) has no secret")
		}
	case AuthMethodBasic, AuthMethodPost:
		if !c.hasSecret() {
			return errors.New("a confidential client needs a secret")
		}
	default:
		return fmt.Errorf("unsupported token endpoint auth method %q", c.TokenEndpointAuthMethod)
	}
	return nil
}

// ClientMetadataDocument is what a Client ID Metadata Document says about a client: the
// fields the server uses, already fetched and checked by a CIMDFetcher.
type ClientMetadataDocument struct {
	ClientID                string
	ClientName              string
	RedirectURIs            []string
	ClientURI               string
	LogoURI                 string
	TokenEndpointAuthMethod string
	GrantTypes              []string
	Scope                   string
}

// CIMDFetcher fetches Client ID Metadata Documents. The implementation owns fetching
// policy: https only, SSRF guards, size and time limits, HTTP caching; the server checks
// again that the document names the URL it came from.
type CIMDFetcher interface {
	Fetch(ctx context.Context, clientID string) (*ClientMetadataDocument, error)
}

// clientSource says where a client is registered; the consent page tells the user.
type clientSource int

const (
	sourceDynamic  clientSource = iota // RFC 7591, or written by the operator into the store
	sourceStatic                       // ClientRegistry
	sourceMetadata                     // Client ID Metadata Document
)

// client is a client as the handlers see it, whatever its source.
type client struct {
	ID                 string
	Name               string
	RedirectURIs       []string
	GrantTypes         []string
	AuthMethod         string
	Scopes             []string // allowed; empty: all supported
	Trusted            bool
	IntrospectUpstream bool
	// Resources are the normalized RFC 8707 resources the client serves (static
	// clients only): the tokens it may exchange.
	Resources []string
	Source    clientSource
	// stored is the store's record of a dynamically registered client; nil for the
	// other sources.
	stored *store.Client
	// secretHash is the HMAC of the secret (dynamic clients store it so);
	// secretSHA256 is the SHA-256 digest of a static client's secret.
	secretHash   string
	secretSHA256 []byte
}

func (c *client) allowsGrant(g string) bool { return slices.Contains(c.GrantTypes, g) }

func (c *client) confidential() bool { return c.AuthMethod != AuthMethodNone }

// errUnknownClient is returned by resolveClient for any client we cannot use.
var errUnknownClient = errors.New("unknown client")

// resolveClient finds a client by ID: pre-registered first, then a metadata document
// when the ID is an https URL, then the store (dynamic registrations).
func (s *Server) resolveClient(ctx context.Context, id string) (*client, error) {
	return s.resolveClientWith(ctx, id, s.store.GetClient)
}

// storedClientID reports whether resolveClient would look id up in the store: it is
// neither pre-registered nor a metadata document URL.
func (s *Server) storedClientID(ctx context.Context, id string) bool {
	if id == "" || isMetadataClientID(id) {
		return false
	}
	if s.opts.Clients != nil {
		if _, ok, err := s.opts.Clients.Lookup(ctx, id); ok || err != nil {
			return false
		}
	}
	return true
}

// resolveClientWith is resolveClient reading stored clients with get (the token
// endpoint passes a read it has already made).
func (s *Server) resolveClientWith(ctx context.Context, id string, get func(context.Context, string) (store.Client, error)) (*client, error) {
	if id == "" {
		return nil, errUnknownClient
	}
	if s.opts.Clients != nil {
		sc, ok, err := s.opts.Clients.Lookup(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("look up static client: %w", err)
		}
		if ok {
			return fromStatic(sc), nil
		}
	}
	if isMetadataClientID(id) {
		return s.resolveMetadataClient(ctx, id)
	}
	c, err := get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnknownClient
	}
	if err != nil {
		return nil, fmt.Errorf("get client: %w", err)
	}
	if !c.ExpiresAt.IsZero() && !s.now().Before(c.ExpiresAt) {
		return nil, errUnknownClient
	}
	return fromStored(c), nil
}

// resolveMetadataClient fetches a CIMD client. The MCP specification requires the
// document's client_id to equal the URL exactly; we check it even if the fetcher did.
func (s *Server) resolveMetadataClient(ctx context.Context, id string) (*client, error) {
	if s.opts.CIMD == nil {
		return nil, errUnknownClient
	}
	if err := s.checkMetadataDomain(id); err != nil {
		return nil, err
	}
	doc, err := s.opts.CIMD.Fetch(ctx, id)
	if err != nil {
		s.log.InfoContext(ctx, "client metadata document refused", "client_id", id, "err", err)
		return nil, errUnknownClient
	}
	if doc == nil || doc.ClientID != id || len(doc.RedirectURIs) == 0 {
		return nil, errUnknownClient
	}
	// A metadata document cannot carry a secret, so these clients are public.
	if m := doc.TokenEndpointAuthMethod; m != "" && m != AuthMethodNone {
		return nil, errUnknownClient
	}
	if err := s.checkMetadataRedirects(doc.RedirectURIs); err != nil {
		return nil, err
	}
	grants := doc.GrantTypes
	if len(grants) == 0 {
		grants = []string{grantAuthCode, grantRefresh}
	}
	return &client{
		ID: id, Name: doc.ClientName, RedirectURIs: doc.RedirectURIs, GrantTypes: grants,
		AuthMethod: AuthMethodNone, Scopes: splitScope(doc.Scope), Source: sourceMetadata,
	}, nil
}

// isMetadataClientID: the MCP specification's CIMD client IDs are https URLs with a
// path component.
func isMetadataClientID(id string) bool {
	if !strings.HasPrefix(id, "https://") {
		return false
	}
	u, err := url.Parse(id)
	return err == nil && u.Host != "" && u.Path != "" && u.Path != "/" && u.Fragment == "" && u.User == nil
}

func fromStatic(sc StaticClient) *client {
	digest := sc.SecretSHA256
	if sc.Secret != "" {
		sum := sha256.Sum256([]byte(sc.Secret))
		digest = sum[:]
	}
	var resources []string
	for _, r := range sc.Resources {
		if n, ok := normalizeResource(r); ok && !slices.Contains(resources, n) {
			resources = append(resources, n)
		}
	}
	return &client{
		ID: sc.ID, Name: sc.Name, RedirectURIs: sc.RedirectURIs, GrantTypes: sc.GrantTypes,
		AuthMethod: sc.TokenEndpointAuthMethod, Scopes: sc.Scopes, Trusted: sc.Trusted,
		IntrospectUpstream: sc.IntrospectUpstream, Resources: resources, Source: sourceStatic,
		secretSHA256: digest,
	}
}

func fromStored(c store.Client) *client {
	grants := c.GrantTypes
	if len(grants) == 0 {
		grants = []string{grantAuthCode}
	}
	method := c.TokenEndpointAuthMethod
	if method == "" {
		method = AuthMethodBasic
		if c.SecretHash == "" {
			method = AuthMethodNone
		}
	}
	// The scope a client registered itself with is kept and echoed (RFC 7591), but is
	// no ceiling: whoever registered can register again with more, so it protects
	// nothing, and MCP clients register with the scope of their first challenge (the
	// TypeScript SDK does), which would make every later step-up an invalid_scope.
	// An administrator's limit is MCPClient/static scopes.
	return &client{
		ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, GrantTypes: grants,
		AuthMethod: method, Trusted: c.Trusted,
		Source: sourceDynamic, secretHash: c.SecretHash, stored: &c,
	}
}

// verifySecret compares a presented secret with the client's in constant time.
func (s *Server) verifySecret(c *client, secret string) bool {
	if secret == "" {
		return false
	}
	switch {
	case c.secretHash != "":
		return equalHash(s.keys.hash(labelClientSecret, secret), c.secretHash)
	case len(c.secretSHA256) == sha256.Size:
		sum := sha256.Sum256([]byte(secret))
		return subtle.ConstantTimeCompare(sum[:], c.secretSHA256) == 1
	}
	return false
}

// matchRedirectURI reports whether requested is one of the client's redirect URIs.
// OAuth 2.1 §4.1.1 and the MCP specification require exact string comparison; the
// one exception is RFC 8252 §7.3: "The authorization server MUST allow any port to be
// specified at the time of the request for loopback IP redirect URIs".
func (c *client) matchRedirectURI(requested string) bool {
	for _, reg := range c.RedirectURIs {
		if reg == requested || loopbackMatch(reg, requested) {
			return true
		}
	}
	return false
}

// loopbackMatch compares two http loopback URIs ignoring only the port.
func loopbackMatch(registered, requested string) bool {
	ru, err1 := url.Parse(registered)
	qu, err2 := url.Parse(requested)
	if err1 != nil || err2 != nil || ru.Scheme != "http" || qu.Scheme != "http" {
		return false
	}
	if !isLoopbackHost(ru.Hostname()) || ru.Hostname() != qu.Hostname() {
		return false
	}
	if ru.User != nil || qu.User != nil || ru.Fragment != "" || qu.Fragment != "" || strings.Contains(requested, "#") {
		return false
	}
	if p := qu.Port(); p != "" && !isPort(p) {
		return false
	}
	return ru.EscapedPath() == qu.EscapedPath() && ru.RawQuery == qu.RawQuery && ru.ForceQuery == qu.ForceQuery
}

func isPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n > 0 && n < 65536
}

// isLoopbackHost: a loopback IP literal (RFC 8252 §7.3), or "localhost", which RFC 8252
// §8.3 discourages but MCP clients use widely.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// blockedSchemes can run script or read local data in a browser; never a redirect target.
var blockedSchemes = []string{"javascript", "data", "vbscript", "file", "about", "blob", "filesystem", "view-source", "ws", "wss", "ftp"}

// validateRedirectURI applies the registration rules: https anywhere; http only on a
// loopback host (RFC 8252 §7.3); private-use schemes (RFC 8252 §7.1, reverse domain
// name, so they contain a dot) only for native applications; never a fragment (RFC 6749
// §3.1.2), a wildcard, or a scheme that runs script or reads local data.
func validateRedirectURI(raw, appType string) error {
	if raw == "" || len(raw) > 2000 {
		return errors.New("redirect URI empty or too long")
	}
	if strings.Contains(raw, "#") {
		return fmt.Errorf("redirect URI %q has a fragment", raw)
	}
	if strings.Contains(raw, "*") {
		return fmt.Errorf("redirect URI %q has a wildcard", raw)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("redirect URI %q has spaces or control characters", raw)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("redirect URI %q is not an absolute URI", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case slices.Contains(blockedSchemes, scheme):
		return fmt.Errorf("redirect URI %q: scheme %s is not allowed", raw, scheme)
	case scheme == "https" || scheme == "http":
		if u.Host == "" || u.User != nil {
			return fmt.Errorf("redirect URI %q needs a host and no user info", raw)
		}
		if scheme == "http" && !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("redirect URI %q: http is allowed only on a loopback host", raw)
		}
		return nil
	case appType != AppTypeNative:
		return fmt.Errorf("redirect URI %q: private-use schemes are for native applications", raw)
	case !strings.Contains(scheme, "."):
		return fmt.Errorf("redirect URI %q: a private-use scheme must be a reverse domain name (RFC 8252 §7.1)", raw)
	}
	return nil
}

// isPrivateUseScheme reports whether a (valid) redirect URI uses a private-use scheme.
func isPrivateUseScheme(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme != "http" && u.Scheme != "https"
}

// registrationLapse is when a registration made at created lapses however much it is
// used (Options.RegistrationTTL).
func (s *Server) registrationLapse(created time.Time) time.Time {
	return created.Add(s.opts.RegistrationTTL)
}

// registrationExpiry is when a registration made at created and last used at lastUse
// (its creation, when never used) goes: at its lapse, or after the idle TTL without a
// use, whichever comes first. The store drops it then on its own.
func (s *Server) registrationExpiry(created, lastUse time.Time) time.Time {
	exp := s.registrationLapse(created)
	if idle := s.opts.RegistrationIdleTTL; idle > 0 && lastUse.Add(idle).Before(exp) {
		exp = lastUse.Add(idle)
	}
	return exp
}

// touchInterval is how long after a recorded use the next one is recorded: at most one
// write per client per hour, sooner only for an idle TTL so short (tests) that an hour
// would matter.
func (s *Server) touchInterval() time.Duration {
	if idle := s.opts.RegistrationIdleTTL; idle > 0 {
		return min(time.Hour, idle/10)
	}
	return time.Hour
}

// clientUse is the use to record when c obtains tokens at now, or nil: only stored
// registrations have one, and only when the last recorded use is touchInterval old.
// It rides the grant's own round trip (store.TokenPair.ClientUse), so the token
// endpoint stays at two.
func (s *Server) clientUse(c *client, now time.Time) *store.ClientUse {
	st := c.stored
	if st == nil || (!st.LastUsedAt.IsZero() && now.Sub(st.LastUsedAt) < s.touchInterval()) {
		return nil
	}
	return &store.ClientUse{ClientID: st.ID, Source: st.Source, LastUsedAt: now, ExpiresAt: s.registrationExpiry(st.CreatedAt, now)}
}

// maxPerSource is the per-source limit passed to the store; 0 is none.
func (s *Server) maxPerSource() int { return max(0, s.opts.RegistrationMaxPerSource) }

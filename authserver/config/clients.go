package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"unicode"

	"sigs.k8s.io/yaml"
)

// Token endpoint authentication methods a pre-registered client may use.
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
)

// Grant types a pre-registered client may use.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	// GrantClientCredentials (RFC 6749 §4.4) is for confidential clients acting for
	// themselves.
	GrantClientCredentials = "client_credentials"
	// GrantDeviceCode is the device authorization grant (RFC 8628).
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
)

// secretHashPrefix starts a SecretHash; the algorithm is named so it can change.
const secretHashPrefix = "sha256:"

// Client is a pre-registered OAuth client, in the config file's clients list or in
// the clients file.
type Client struct {
	// ClientID is the client's identifier: printable ASCII without spaces, at most 255
	// bytes, and not an http(s) URL (those are Client ID Metadata Documents).
	// Required.
	ClientID string `json:"clientID"`
	// ClientName is shown on the consent page (at most 100 characters).
	ClientName string `json:"clientName,omitempty"`
	// SecretHash is "sha256:" and the lowercase hex SHA-256 of the client secret, for
	// a confidential client whose secret was generated elsewhere (the operator writes
	// this into the clients file, so the file holds no secret). The secret must be
	// high-entropy (32 random bytes or more): an unsalted hash protects nothing else.
	SecretHash string `json:"secretHash,omitempty"`
	// SecretFile is the path of a file holding the client secret in clear, the
	// alternative to SecretHash for hand-written configurations.
	SecretFile string `json:"secretFile,omitempty"`
	// RedirectURIs are compared exactly with the redirect_uri of authorization
	// requests. Each is https, http on a loopback host, or a private-use scheme
	// (RFC 8252 §7.1, such as com.example.app:/cb); no fragment. At least one when
	// grantTypes include authorization_code.
	RedirectURIs []string `json:"redirectURIs"`
	// TokenEndpointAuthMethod is none (public client, the default without a secret),
	// client_secret_basic (the default with a secret) or client_secret_post.
	TokenEndpointAuthMethod string `json:"tokenEndpointAuthMethod,omitempty"`
	// GrantTypes are authorization_code, refresh_token, client_credentials (a
	// confidential client acting for itself) and
	// urn:ietf:params:oauth:grant-type:device_code (RFC 8628). At least one that
	// obtains a first token (any but refresh_token). Default authorization_code and
	// refresh_token.
	GrantTypes []string `json:"grantTypes,omitempty"`
	// Scopes limits the scopes the client may obtain; each must be in
	// scopesSupported. Empty means all of scopesSupported.
	Scopes []string `json:"scopes,omitempty"`
	// Trusted skips the consent page for this client: its requests go straight to
	// the upstream login. Only for first-party clients the operator vouches for.
	Trusted bool `json:"trusted,omitempty"`
	// IntrospectUpstream lets this client see the user's upstream access token when it
	// introspects one of our tokens: an MCP server whose tools call the upstream API
	// for the user. It must be a confidential client. No other caller ever sees it.
	IntrospectUpstream bool `json:"introspectUpstream,omitempty"`
	// Resources are the RFC 8707 resource URIs this client serves (an MCP server's
	// own URL, as its clients name it in `resource`). Such a client may exchange an
	// access token bound to one of them for the user's upstream access token (RFC 8693
	// token exchange, docs/token-exchange.md). Each is an absolute URI without a
	// fragment. Confidential clients only.
	Resources []string `json:"resources,omitempty"`
}

// ClientsFile is the format of the clients file: an object, so it can grow fields.
type ClientsFile struct {
	// Clients are the pre-registered clients.
	Clients []Client `json:"clients"`
	// Approvals are dynamic and metadata-document clients approved for approval mode
	// (clientPolicy.requireApproval): the operator lists those of MCPClients with
	// spec.approveClientID.
	Approvals []Approval `json:"approvals,omitempty"`
}

// Approval approves one dynamic or metadata-document client in the registry.
type Approval struct {
	// ClientID is the client approved: a dynamic registration's client_id or a
	// metadata document's URL. Required.
	ClientID string `json:"clientID"`
	// ApprovedBy says who approved it, for the logs ("MCPClient team-a/claude").
	ApprovedBy string `json:"approvedBy,omitempty"`
}

// ParseClients decodes a clients file strictly, fills defaults and validates each
// client on its own (paths read "clients[0].redirectURIs[1]"). Checks against a
// server's configuration are (*Config).ValidateClients. An empty file has no clients.
func ParseClients(data []byte) ([]Client, error) {
	f, err := ParseClientsFile(data)
	if err != nil {
		return nil, err
	}
	return f.Clients, nil
}

// ParseClientsFile is ParseClients returning the whole file, approvals included.
func ParseClientsFile(data []byte) (ClientsFile, error) {
	var f ClientsFile
	if err := decodeStrict(data, &f); err != nil {
		return ClientsFile{}, err
	}
	for i := range f.Clients {
		f.Clients[i].normalize()
	}
	v := &validator{}
	validateClientList(v, f.Clients)
	validateApprovals(v, f)
	if err := errors.Join(v.errs...); err != nil {
		return ClientsFile{}, err
	}
	return f, nil
}

// maxApprovalClientID bounds an approved client ID: a metadata document URL is at
// most what the server fetches.
const maxApprovalClientID = 2000

func validateApprovals(v *validator, f ClientsFile) {
	static := map[string]bool{}
	for _, c := range f.Clients {
		static[c.ClientID] = true
	}
	seen := map[string]bool{}
	for i, a := range f.Approvals {
		p := fmt.Sprintf("approvals[%d].clientID", i)
		switch id := a.ClientID; {
		case id == "":
			v.addf(p, "required")
		case len(id) > maxApprovalClientID || !printableASCII(id):
			v.addf(p, "must be printable ASCII without spaces, at most %d bytes", maxApprovalClientID)
		case static[id]:
			v.addf(p, "%q is a pre-registered client: it needs no approval", id)
		case seen[id]:
			v.addf(p, "duplicate %q", id)
		}
		seen[a.ClientID] = true
		if len(a.ApprovedBy) > 400 || strings.ContainsFunc(a.ApprovedBy, unicode.IsControl) {
			v.addf(fmt.Sprintf("approvals[%d].approvedBy", i), "longer than 400 bytes or has control characters")
		}
	}
}

// MarshalClientsFile encodes f in the format ParseClientsFile reads.
func MarshalClientsFile(f ClientsFile) ([]byte, error) {
	if f.Clients == nil {
		f.Clients = []Client{}
	}
	return yaml.Marshal(f)
}

// LoadClients reads and parses the clients file at path.
func LoadClients(path string) ([]Client, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read clients file: %w", err)
	}
	clients, err := ParseClients(data)
	if err != nil {
		return nil, fmt.Errorf("clients file %s:\n%w", path, err)
	}
	return clients, nil
}

// MarshalClients encodes clients in the format ParseClients reads.
func MarshalClients(clients []Client) ([]byte, error) {
	if clients == nil {
		clients = []Client{}
	}
	return yaml.Marshal(ClientsFile{Clients: clients})
}

// ValidateClients checks clients from the clients file against c: each client's
// scopes must be in scopesSupported, and no client may reuse the ID of a client in
// c.Clients. It assumes ParseClients has validated the clients themselves.
func (c *Config) ValidateClients(clients []Client) error {
	v := &validator{}
	static := map[string]bool{}
	for _, s := range c.Clients {
		static[s.ClientID] = true
	}
	for i, cl := range clients {
		if static[cl.ClientID] {
			v.addf(fmt.Sprintf("clients[%d].clientID", i), "%q is already a client in the server's configuration", cl.ClientID)
		}
	}
	c.checkClientScopes(v, clients)
	return errors.Join(v.errs...)
}

func (c *Config) checkClientScopes(v *validator, clients []Client) {
	supported := map[string]bool{}
	for _, s := range c.ScopesSupported {
		supported[s] = true
	}
	for i, cl := range clients {
		for j, s := range cl.Scopes {
			if validScope(s) && !supported[s] {
				v.addf(fmt.Sprintf("clients[%d].scopes[%d]", i, j), "%q is not in scopesSupported", s)
			}
		}
	}
}

// SecretDigest returns the SHA-256 digest of the client's secret, from SecretHash or
// by reading SecretFile through readFile (nil means os.ReadFile); nil for a public
// client. The server compares it in constant time with the digest of the secret a
// client presents.
func (cl *Client) SecretDigest(readFile func(string) ([]byte, error)) ([]byte, error) {
	switch {
	case cl.SecretHash != "":
		d, err := hex.DecodeString(strings.TrimPrefix(cl.SecretHash, secretHashPrefix))
		if err != nil || !strings.HasPrefix(cl.SecretHash, secretHashPrefix) || len(d) != sha256.Size {
			return nil, fmt.Errorf("client %s: secretHash: %s", cl.ClientID, errSecretHashFormat)
		}
		return d, nil
	case cl.SecretFile != "":
		if readFile == nil {
			readFile = os.ReadFile
		}
		secret, err := readSecretFile(readFile, cl.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("client %s: secretFile: %w", cl.ClientID, err)
		}
		d := sha256.Sum256([]byte(secret))
		return d[:], nil
	}
	return nil, nil
}

// HashClientSecret returns the SecretHash value for secret.
func HashClientSecret(secret string) string {
	d := sha256.Sum256([]byte(secret))
	return secretHashPrefix + hex.EncodeToString(d[:])
}

var errSecretHashFormat = errors.New(`must be "sha256:" followed by 64 lowercase hex digits`)

// normalize fills the defaults that depend on other fields.
func (cl *Client) normalize() {
	if cl.TokenEndpointAuthMethod == "" {
		cl.TokenEndpointAuthMethod = AuthMethodNone
		if cl.SecretHash != "" || cl.SecretFile != "" {
			cl.TokenEndpointAuthMethod = AuthMethodClientSecretBasic
		}
	}
	if len(cl.GrantTypes) == 0 {
		cl.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
	}
}

func validateClientList(v *validator, clients []Client) {
	seen := map[string]int{}
	for i := range clients {
		p := fmt.Sprintf("clients[%d]", i)
		clients[i].validate(v, p)
		id := clients[i].ClientID
		if j, dup := seen[id]; dup && id != "" {
			v.addf(p+".clientID", "%q is also clients[%d]", id, j)
		} else {
			seen[id] = i
		}
	}
}

// validate checks one client on its own; prefix is its path.
func (cl *Client) validate(v *validator, prefix string) {
	switch id := cl.ClientID; {
	case id == "":
		v.addf(prefix+".clientID", "required")
	case len(id) > 255:
		v.addf(prefix+".clientID", "longer than 255 bytes")
	case !printableASCII(id):
		v.addf(prefix+".clientID", "must be printable ASCII without spaces")
	case strings.HasPrefix(strings.ToLower(id), "https://") || strings.HasPrefix(strings.ToLower(id), "http://"):
		// draft-ietf-oauth-client-id-metadata-document, "Supporting Both
		// Pre-Registered and Unregistered Clients": generated IDs should not start
		// with https://, so the server can tell the two kinds apart by their form.
		v.addf(prefix+".clientID", "must not be an http(s) URL (those identify Client ID Metadata Documents)")
	}
	if msg := checkDisplayText(cl.ClientName); msg != "" {
		v.addf(prefix+".clientName", "%s", msg)
	}

	hasSecret := cl.SecretHash != "" || cl.SecretFile != ""
	switch cl.TokenEndpointAuthMethod {
	case "", AuthMethodNone:
		if hasSecret {
			v.addf(prefix+".tokenEndpointAuthMethod", "none, but the client has a secret")
		}
	case AuthMethodClientSecretBasic, AuthMethodClientSecretPost:
		if !hasSecret {
			v.addf(prefix+".secretHash", "required (or secretFile) with tokenEndpointAuthMethod %s", cl.TokenEndpointAuthMethod)
		}
	default:
		v.addf(prefix+".tokenEndpointAuthMethod", "%q is not one of none, client_secret_basic, client_secret_post", cl.TokenEndpointAuthMethod)
	}
	if cl.SecretHash != "" && cl.SecretFile != "" {
		v.addf(prefix+".secretFile", "set secretHash or secretFile, not both")
	}
	if cl.IntrospectUpstream && !hasSecret {
		v.addf(prefix+".introspectUpstream", "only a confidential client (secretHash or secretFile) may see upstream tokens")
	}
	if len(cl.Resources) > 0 && !hasSecret {
		v.addf(prefix+".resources", "only a confidential client (secretHash or secretFile) may exchange tokens for its resources")
	}
	seenRes := map[string]bool{}
	for i, r := range cl.Resources {
		f := fmt.Sprintf("%s.resources[%d]", prefix, i)
		if msg := CheckResource(r); msg != "" {
			v.addf(f, "%q: %s", r, msg)
		} else if seenRes[r] {
			v.addf(f, "duplicate %q", r)
		}
		seenRes[r] = true
	}
	if cl.SecretHash != "" && !validSecretHash(cl.SecretHash) {
		v.addf(prefix+".secretHash", "%s", errSecretHashFormat)
	}

	if len(cl.RedirectURIs) == 0 && (len(cl.GrantTypes) == 0 || slices.Contains(cl.GrantTypes, GrantAuthorizationCode)) {
		v.addf(prefix+".redirectURIs", "at least one is required with authorization_code")
	}
	seen := map[string]bool{}
	for i, r := range cl.RedirectURIs {
		f := fmt.Sprintf("%s.redirectURIs[%d]", prefix, i)
		if msg := CheckRedirectURI(r); msg != "" {
			v.addf(f, "%q: %s", r, msg)
		} else if seen[r] {
			v.addf(f, "duplicate %q", r)
		}
		seen[r] = true
	}

	grants := map[string]bool{}
	for i, g := range cl.GrantTypes {
		f := fmt.Sprintf("%s.grantTypes[%d]", prefix, i)
		switch {
		case g != GrantAuthorizationCode && g != GrantRefreshToken && g != GrantClientCredentials && g != GrantDeviceCode:
			v.addf(f, "%q is not one of authorization_code, refresh_token, client_credentials, %s", g, GrantDeviceCode)
		case grants[g]:
			v.addf(f, "duplicate %q", g)
		case g == GrantClientCredentials && !hasSecret:
			v.addf(f, "client_credentials needs a confidential client (secretHash or secretFile)")
		}
		grants[g] = true
	}
	if len(cl.GrantTypes) > 0 && !grants[GrantAuthorizationCode] && !grants[GrantClientCredentials] && !grants[GrantDeviceCode] {
		v.addf(prefix+".grantTypes", "must include authorization_code, client_credentials or %s: refresh_token alone obtains no first token", GrantDeviceCode)
	}
	for i, s := range cl.Scopes {
		if !validScope(s) {
			v.addf(fmt.Sprintf("%s.scopes[%d]", prefix, i), "%q is not a valid scope", s)
		}
	}
}

func validSecretHash(s string) bool {
	h, ok := strings.CutPrefix(s, secretHashPrefix)
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	for _, r := range h {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7F {
			return false
		}
	}
	return true
}

// CheckResource returns what is wrong with an RFC 8707 resource indicator, or "".
// §2: "an absolute URI ... MUST NOT include a fragment component"; the server also
// wants a host and no user info, as it does of the resource parameter.
func CheckResource(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return "must not be empty"
	case len(raw) > 2000:
		return "longer than 2000 bytes"
	case err != nil:
		return "not a valid URI"
	case !u.IsAbs() || u.Host == "":
		return "must be an absolute URI with a host"
	case strings.Contains(raw, "#"):
		return "must not contain a fragment"
	case u.User != nil:
		return "must not contain user info"
	}
	return ""
}

// forbiddenRedirectSchemes could turn a redirect into script execution, a local file
// or a non-redirect; any other scheme is treated as an app's private-use scheme.
var forbiddenRedirectSchemes = map[string]bool{
	"javascript": true, "vbscript": true, "data": true, "blob": true, "file": true,
	"filesystem": true, "about": true, "ftp": true, "ws": true, "wss": true,
	"mailto": true, "tel": true, "sms": true, "urn": true,
}

// CheckRedirectURI returns what is wrong with a redirect URI, or "": the one rule for
// pre-registered clients and Client ID Metadata Documents (authserver/cimd). Rules: RFC 9700
// §2.1 and RFC 8252 §7 — https; http only on loopback (§7.3); or a private-use
// scheme (§7.1). Private-use schemes need not be reverse domain names, because real
// MCP clients register schemes such as cursor://; PKCE protects the code they carry.
func CheckRedirectURI(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "not a valid URL"
	case !u.IsAbs():
		return "must be an absolute URL"
	case strings.Contains(raw, "#"):
		return "must not contain a fragment"
	case strings.ContainsFunc(raw, unicode.IsSpace):
		return "must not contain spaces"
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return "must have a host"
		}
	case "http":
		if !IsLoopbackHost(u.Hostname()) {
			return "http is allowed only on a loopback host (127.0.0.1, [::1], localhost)"
		}
	default:
		if forbiddenRedirectSchemes[u.Scheme] {
			return fmt.Sprintf("scheme %q is not allowed", u.Scheme)
		}
	}
	return ""
}

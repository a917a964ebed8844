package upstream

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Type names a kind of upstream provider: a preset for a well-known service, or one of
// the two generic kinds.
type Type string

// The provider types New knows. Presets are thin layers of defaults over the two generic
// kinds: github and dropbox over TypeOAuth2, google, linkedin and slack over TypeOIDC.
const (
	// TypeGitHub is GitHub (OAuth apps and GitHub apps) over plain OAuth 2.0.
	TypeGitHub Type = "github"
	// TypeGoogle is Google over OpenID Connect, asking for offline access.
	TypeGoogle Type = "google"
	// TypeLinkedIn is "Sign In with LinkedIn using OpenID Connect".
	TypeLinkedIn Type = "linkedin"
	// TypeSlack is "Sign in with Slack" over OpenID Connect.
	TypeSlack Type = "slack"
	// TypeDropbox is Dropbox over plain OAuth 2.0, asking for offline access.
	TypeDropbox Type = "dropbox"
	// TypeOIDC is any OpenID Connect issuer, found by discovery from IssuerURL.
	TypeOIDC Type = "oidc"
	// TypeOAuth2 is any OAuth 2.0 server, with every endpoint configured explicitly.
	TypeOAuth2 Type = "oauth2"
)

// Types returns every provider type New accepts, sorted; handy for enum validation.
func Types() []Type {
	out := make([]Type, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// PKCEMode says when the authorization request carries a PKCE (RFC 7636) challenge.
type PKCEMode string

const (
	// PKCEAuto, the default: always for OAuth 2.0 types (servers must ignore parameters
	// they do not know, RFC 6749 §3.1), and for OIDC types when the discovery document
	// lists S256 in code_challenge_methods_supported. An OIDC login without PKCE is
	// still protected from code injection by the nonce.
	PKCEAuto PKCEMode = ""
	// PKCEAlways sends an S256 challenge whatever discovery says.
	PKCEAlways PKCEMode = "always"
	// PKCENever sends no challenge, for the rare server that rejects one.
	PKCENever PKCEMode = "never"
)

// Config configures one upstream provider. Fields a preset fills in are optional for
// that preset; a value set here wins over the preset's default, which is how tests point
// a preset at an httptest server. Validate reports fields a type does not use rather
// than ignoring them silently.
type Config struct {
	// Type is the kind of provider; required.
	Type Type `json:"type"`
	// ClientID and ClientSecret are our credentials at the upstream; required.
	ClientID     string `json:"clientID"`
	ClientSecret string `json:"clientSecret"`
	// IssuerURL is the OpenID Connect issuer, discovered at construction. Required for
	// TypeOIDC, optional for OIDC presets, refused for OAuth 2.0 types.
	IssuerURL string `json:"issuerURL,omitempty"`
	// AuthorizationURL, TokenURL and UserInfoURL are the upstream endpoints. Required
	// for TypeOAuth2; for every other type they override the preset or discovered ones.
	AuthorizationURL string `json:"authorizationURL,omitempty"`
	TokenURL         string `json:"tokenURL,omitempty"`
	UserInfoURL      string `json:"userInfoURL,omitempty"`
	// APIURL is the provider's REST API, where MembershipReader reads memberships;
	// github only (default https://api.github.com). Set, it also moves the user-info
	// endpoint (APIURL/user) unless UserInfoURL is set.
	APIURL string `json:"apiURL,omitempty"`
	// Scopes requested upstream. When set they replace the preset's scopes (so list the
	// preset's ones too if you still want them); OIDC types always add "openid".
	Scopes []string `json:"scopes,omitempty"`
	// UserIDField is the user-info (or ID token) claim holding the stable user id; a
	// dotted path such as "data.id" reaches into nested objects, and a numeric value is
	// rendered in decimal. Required for TypeOAuth2; presets default it ("sub" for OIDC).
	UserIDField string `json:"userIDField,omitempty"`
	// EmailField, NameField and GroupsField name the claims for the other identity
	// fields, as UserIDField does; they default to the preset's or to "email", "name"
	// (then "preferred_username") and "groups".
	EmailField  string `json:"emailField,omitempty"`
	NameField   string `json:"nameField,omitempty"`
	GroupsField string `json:"groupsField,omitempty"`
	// RedirectURL is our callback endpoint, registered at the upstream; required.
	RedirectURL string `json:"redirectURL"`
	// PKCE says when to send a PKCE challenge; see PKCEMode.
	PKCE PKCEMode `json:"pkce,omitempty"`
	// InsecureAllowHTTP permits http:// URLs for hosts other than loopback ones (an
	// in-cluster development IdP, say). Without it every URL must be https or loopback,
	// because the client secret and the user's tokens travel on these connections.
	InsecureAllowHTTP bool `json:"insecureAllowHTTP,omitempty"`
	// HTTPClient makes every upstream request; nil means a client with a 30 s timeout.
	// Response bodies are capped at 1 MiB whatever the client.
	HTTPClient *http.Client `json:"-"`
}

// FieldError is one problem Validate found, naming the Config field at fault.
type FieldError struct {
	// Field is the Config field's Go name, such as "ClientID".
	Field string
	// Problem says what is wrong with it.
	Problem string
}

// Error implements error.
func (e *FieldError) Error() string {
	return "upstream config: " + e.Field + " " + e.Problem
}

// Validate checks c without any network access and returns every problem found, each a
// *FieldError (joined with errors.Join), or nil.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}

	k, known := registry[c.Type]
	switch {
	case c.Type == "":
		bad("Type", "is required (one of %s)", typeList())
	case !known:
		bad("Type", "%q is unknown (one of %s)", c.Type, typeList())
	}
	if c.ClientID == "" {
		bad("ClientID", "is required")
	}
	if c.ClientSecret == "" {
		bad("ClientSecret", "is required")
	}
	if c.RedirectURL == "" {
		bad("RedirectURL", "is required")
	} else if err := checkURL(c.RedirectURL, c.InsecureAllowHTTP); err != nil {
		bad("RedirectURL", "%v", err)
	}

	urls := []struct {
		field, value, preset string
	}{
		{"IssuerURL", c.IssuerURL, k.preset.issuer},
		{"AuthorizationURL", c.AuthorizationURL, k.preset.authURL},
		{"TokenURL", c.TokenURL, k.preset.tokenURL},
		{"UserInfoURL", c.UserInfoURL, k.preset.userInfoURL},
		{"APIURL", c.APIURL, k.preset.apiURL},
	}
	for _, u := range urls {
		switch {
		case u.field == "IssuerURL" && known && !k.oidc && u.value != "":
			bad(u.field, "is not used by type %q (it has no OpenID Connect discovery)", c.Type)
		case u.field == "APIURL" && known && k.preset.apiURL == "" && u.value != "":
			bad(u.field, "is not used by type %q (only github reads memberships from an API)", c.Type)
		case u.value != "":
			if err := checkURL(u.value, c.InsecureAllowHTTP); err != nil {
				bad(u.field, "%v", err)
			}
		case !known || u.preset != "":
			// Unknown type is already reported; a preset supplies this one.
		case u.field == "IssuerURL" && k.oidc:
			bad(u.field, "is required for type %q", c.Type)
		case u.field == "APIURL":
			// Only presets that read memberships have an API; nothing to require.
		case u.field != "IssuerURL" && !k.oidc:
			// OIDC types discover their endpoints; OAuth 2.0 types must be told.
			bad(u.field, "is required for type %q", c.Type)
		}
	}

	if known && c.UserIDField == "" && k.preset.mapping.subject == "" {
		bad("UserIDField", "is required for type %q", c.Type)
	}
	for _, f := range []struct{ field, value string }{
		{"UserIDField", c.UserIDField}, {"EmailField", c.EmailField},
		{"NameField", c.NameField}, {"GroupsField", c.GroupsField},
	} {
		if f.value != "" && !validClaimPath(f.value) {
			bad(f.field, "%q is not a claim name or dotted path", f.value)
		}
	}
	for i, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			bad("Scopes", "entry %d (%q) is not a single scope token", i, s)
		}
	}
	switch c.PKCE {
	case PKCEAuto, PKCEAlways, PKCENever:
	default:
		bad("PKCE", "%q is unknown (use %q, %q or leave empty)", c.PKCE, PKCEAlways, PKCENever)
	}
	return errors.Join(errs...)
}

// DefaultScopes returns the scopes a type requests when Config.Scopes is empty (OIDC
// types add "openid" whatever the list), so that a caller can add one to them.
func DefaultScopes(t Type) []string {
	return slices.Clone(registry[t].preset.scopes)
}

func typeList() string {
	ts := Types()
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// checkURL accepts absolute https URLs, and http ones for loopback hosts (local
// development and httptest) or when insecure is set.
func checkURL(raw string, insecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a URL: %v", err)
	}
	if !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%q must not have a fragment", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if insecure || isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q must use https (http only for loopback hosts or with InsecureAllowHTTP)", raw)
	default:
		return fmt.Errorf("%q must be an https URL", raw)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validClaimPath accepts "a" and "a.b.c" with no empty segment.
func validClaimPath(p string) bool {
	return !slices.Contains(strings.Split(p, "."), "")
}

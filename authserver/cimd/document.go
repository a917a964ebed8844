package cimd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/mcpauth/mcpauth/authserver/config"
)

// Document is a validated Client ID Metadata Document: the RFC 7591 client metadata
// the client publishes at its client_id URL. Fields the server has no use for are
// dropped.
type Document struct {
	// ClientID equals the URL the document was fetched from, byte for byte.
	ClientID string `json:"client_id"`
	// ClientName is the human-readable name; required by the MCP specification.
	ClientName string `json:"client_name"`
	// RedirectURIs are the registered redirect URIs (at least one), each https, http
	// on a loopback host, or a private-use scheme; none has a fragment.
	RedirectURIs []string `json:"redirect_uris"`
	// TokenEndpointAuthMethod is "none" (also when the document omits it) or
	// "private_key_jwt"; shared-secret methods are refused.
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
	// GrantTypes are as published; the server applies its own policy.
	GrantTypes []string `json:"grant_types,omitempty"`
	// ResponseTypes are as published; the server applies its own policy.
	ResponseTypes []string `json:"response_types,omitempty"`
	// Scope is the space-separated scopes the client may request, if it says.
	Scope string `json:"scope,omitempty"`
	// ApplicationType is "web" or "native" when given.
	ApplicationType string `json:"application_type,omitempty"`
	// ClientURI is the client's home page (https).
	ClientURI string `json:"client_uri,omitempty"`
	// LogoURI is the client's logo (https). The draft advises fetching and caching it
	// server-side rather than letting the user's browser load it.
	LogoURI string `json:"logo_uri,omitempty"`
	// PolicyURI is the client's privacy policy (https).
	PolicyURI string `json:"policy_uri,omitempty"`
	// TOSURI is the client's terms of service (https).
	TOSURI string `json:"tos_uri,omitempty"`
	// JWKSURI publishes the client's public keys, for private_key_jwt; never together
	// with JWKS.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// JWKS is the client's JWK Set inline, public keys only; never with JWKSURI.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// SoftwareID identifies the client software across its deployments.
	SoftwareID string `json:"software_id,omitempty"`
	// SoftwareVersion is the version of the client software.
	SoftwareVersion string `json:"software_version,omitempty"`
	// Contacts are e-mail addresses of people responsible for the client.
	Contacts []string `json:"contacts,omitempty"`
}

// LoopbackOnly reports whether every redirect URI is on a loopback host: any program
// on the user's machine could be the client, which the consent page should say
// (the MCP specification asks servers to warn about it).
func (d *Document) LoopbackOnly() bool {
	for _, r := range d.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || !config.IsLoopbackHost(u.Hostname()) {
			return false
		}
	}
	return len(d.RedirectURIs) > 0
}

// clone returns a deep copy, so callers cannot alter what the cache holds.
func (d *Document) clone() *Document {
	c := *d
	c.RedirectURIs = slices.Clone(d.RedirectURIs)
	c.GrantTypes = slices.Clone(d.GrantTypes)
	c.ResponseTypes = slices.Clone(d.ResponseTypes)
	c.Contacts = slices.Clone(d.Contacts)
	c.JWKS = bytes.Clone(d.JWKS)
	return &c
}

// forbiddenMembers must not appear in a metadata document (draft §"Credential and
// Key Material Restrictions"): there is no way to share a secret with a client that
// never registered.
var forbiddenMembers = []string{"client_secret", "client_secret_expires_at"}

// privateJWKMembers hold private or symmetric key material in a JWK (RFC 7518 §6).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseDocument decodes body and validates it as the document for clientID. It
// returns every problem found, each prefixed with the member at fault.
func parseDocument(body []byte, clientID string) (*Document, []string) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return nil, []string{"not a JSON object"}
	}
	var d Document
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// Members are read by exact name: encoding/json would otherwise match
	// "Client_ID" to client_id, and a document could smuggle a value past a check.
	member(raw, "client_id", &d.ClientID, "a string", add)
	member(raw, "client_name", &d.ClientName, "a string", add)
	member(raw, "redirect_uris", &d.RedirectURIs, "an array of strings", add)
	member(raw, "token_endpoint_auth_method", &d.TokenEndpointAuthMethod, "a string", add)
	member(raw, "grant_types", &d.GrantTypes, "an array of strings", add)
	member(raw, "response_types", &d.ResponseTypes, "an array of strings", add)
	member(raw, "scope", &d.Scope, "a string", add)
	member(raw, "application_type", &d.ApplicationType, "a string", add)
	member(raw, "client_uri", &d.ClientURI, "a string", add)
	member(raw, "logo_uri", &d.LogoURI, "a string", add)
	member(raw, "policy_uri", &d.PolicyURI, "a string", add)
	member(raw, "tos_uri", &d.TOSURI, "a string", add)
	member(raw, "jwks_uri", &d.JWKSURI, "a string", add)
	member(raw, "software_id", &d.SoftwareID, "a string", add)
	member(raw, "software_version", &d.SoftwareVersion, "a string", add)
	member(raw, "contacts", &d.Contacts, "an array of strings", add)
	if v, ok := raw["jwks"]; ok && string(v) != "null" {
		d.JWKS = v
	}

	switch {
	case d.ClientID == "":
		add("client_id: required")
	case d.ClientID != clientID:
		// Draft §"Client ID Metadata Document": simple string comparison, so that
		// https://a/x and https://a:443/x are different clients.
		add("client_id: %q does not match the URL the document was fetched from", truncate(d.ClientID))
	}
	if strings.TrimSpace(d.ClientName) == "" {
		add("client_name: required")
	} else if strings.ContainsFunc(d.ClientName, unicode.IsControl) {
		add("client_name: must not contain control characters")
	}
	if len(d.RedirectURIs) == 0 {
		add("redirect_uris: at least one is required")
	}
	for i, r := range d.RedirectURIs {
		if msg := config.CheckRedirectURI(r); msg != "" {
			add("redirect_uris[%d]: %s", i, msg)
		}
	}
	for _, m := range forbiddenMembers {
		if _, ok := raw[m]; ok {
			add("%s: not allowed in a metadata document", m)
		}
	}
	switch d.TokenEndpointAuthMethod {
	case "":
		d.TokenEndpointAuthMethod = "none" // RFC 7591 §2 defaults to client_secret_basic, impossible here
	case "none":
	case "private_key_jwt":
		if d.JWKSURI == "" && d.JWKS == nil {
			add("token_endpoint_auth_method: private_key_jwt needs jwks or jwks_uri")
		}
	default:
		add("token_endpoint_auth_method: %q is not allowed (only none or private_key_jwt: a metadata document cannot share a secret)", truncate(d.TokenEndpointAuthMethod))
	}
	if d.JWKSURI != "" && d.JWKS != nil {
		add("jwks: must not be given together with jwks_uri (RFC 7591 §2)")
	}
	if d.JWKS != nil {
		if msg := checkJWKS(d.JWKS); msg != "" {
			add("jwks: %s", msg)
		}
	}
	for _, u := range []struct{ name, value string }{
		{"client_uri", d.ClientURI}, {"logo_uri", d.LogoURI}, {"policy_uri", d.PolicyURI},
		{"tos_uri", d.TOSURI}, {"jwks_uri", d.JWKSURI},
	} {
		// Only https: the consent page links or embeds these, and a javascript: or
		// data: URL there is script injection (draft §SSRF: known schemes only).
		if u.value != "" && !isHTTPSURL(u.value) {
			add("%s: must be an https URL", u.name)
		}
	}
	if d.ApplicationType != "" && d.ApplicationType != "web" && d.ApplicationType != "native" {
		add("application_type: %q is not web or native", truncate(d.ApplicationType))
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return &d, nil
}

// member decodes raw[name] into dst when present; null counts as absent.
func member[T any](raw map[string]json.RawMessage, name string, dst *T, want string, add func(string, ...any)) {
	v, ok := raw[name]
	if !ok || string(v) == "null" {
		return
	}
	if err := json.Unmarshal(v, dst); err != nil {
		add("%s: must be %s", name, want)
	}
}

// checkJWKS checks that a JWK Set holds only public keys.
func checkJWKS(raw json.RawMessage) string {
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil || set.Keys == nil {
		return `must be a JWK Set: {"keys": [...]}`
	}
	for i, k := range set.Keys {
		for _, m := range privateJWKMembers {
			if _, ok := k[m]; ok {
				return fmt.Sprintf("keys[%d] holds private or symmetric key material (%q); publish public keys only", i, m)
			}
		}
	}
	return ""
}

func isHTTPSURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != ""
}

// truncate shortens values echoed back in error descriptions.
func truncate(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

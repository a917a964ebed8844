// Package clientpolicy decides which clients may ask the authorization server for a
// login, from config.ClientPolicy: which hosts may serve Client ID Metadata Documents,
// which redirect URIs a dynamic registration or a metadata document may name, the most
// scope a client of each kind may get, and whether new dynamic and metadata-document
// clients wait for an administrator's approval.
//
// It is pure: patterns are parsed once (by the config package's parsers, so that
// validation and matching agree) and matched without I/O.
package clientpolicy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/mcpauth/mcpauth/authserver/config"
)

// Kind is where a client comes from; each kind has its own scope limit.
type Kind int

// Client kinds.
const (
	// PreRegistered clients come from the configuration or MCPClient resources.
	PreRegistered Kind = iota
	// Dynamic clients registered themselves (RFC 7591).
	Dynamic
	// MetadataDocument clients are identified by the https URL of their Client ID
	// Metadata Document.
	MetadataDocument
)

// String names the kind as the documentation and the admin API do.
func (k Kind) String() string {
	switch k {
	case PreRegistered:
		return "pre-registered"
	case Dynamic:
		return "dynamic"
	case MetadataDocument:
		return "metadata-document"
	}
	return "unknown"
}

// Policy is a compiled client policy. A nil *Policy allows every domain, every valid
// redirect URI and every scope, and needs no approval: the server without a
// clientPolicy section. Safe for concurrent use.
type Policy struct {
	domains   []config.DomainPattern
	redirects []config.RedirectPattern
	maxScopes map[Kind][]string
	approval  bool
}

// New compiles c, reporting every pattern that does not parse. It returns nil for a
// policy that sets nothing.
func New(c config.ClientPolicy) (*Policy, error) {
	if c.IsZero() {
		return nil, nil
	}
	p := &Policy{approval: c.RequireApproval, maxScopes: map[Kind][]string{}}
	var errs []error
	for _, d := range c.MetadataDocumentDomains {
		dp, err := config.ParseDomainPattern(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.domains = append(p.domains, dp)
	}
	for _, r := range c.RedirectURIPatterns {
		rp, err := config.ParseRedirectPattern(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.redirects = append(p.redirects, rp)
	}
	for k, scopes := range map[Kind][]string{PreRegistered: c.MaxScopes.PreRegistered,
		Dynamic: c.MaxScopes.Dynamic, MetadataDocument: c.MaxScopes.MetadataDocument} {
		if len(scopes) > 0 {
			p.maxScopes[k] = slices.Clone(scopes)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("client policy: %w", err)
	}
	return p, nil
}

// NeedsApproval reports whether a client of kind k waits for an administrator:
// pre-registered clients never do, since an administrator registered them.
func (p *Policy) NeedsApproval(k Kind) bool {
	return p != nil && p.approval && (k == Dynamic || k == MetadataDocument)
}

// MaxScopes returns the most scope a client of kind k may get, or nil for no limit
// beyond the server's scopes.
func (p *Policy) MaxScopes(k Kind) []string {
	if p == nil {
		return nil
	}
	return p.maxScopes[k]
}

// AllowsMetadataDocument reports whether the metadata-document client ID (an https
// URL) is on an allowed host.
func (p *Policy) AllowsMetadataDocument(clientID string) bool {
	if p == nil || len(p.domains) == 0 {
		return true
	}
	u, err := url.Parse(clientID)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	for _, d := range p.domains {
		if d.Match(host) {
			return true
		}
	}
	return false
}

// AllowsRedirectURI reports whether uri matches one of the patterns (or there are
// none).
func (p *Policy) AllowsRedirectURI(uri string) bool {
	if p == nil || len(p.redirects) == 0 {
		return true
	}
	for _, r := range p.redirects {
		if r.Match(uri) {
			return true
		}
	}
	return false
}

// DisallowedRedirectURI returns the first of uris no pattern allows, or "" when all
// are allowed.
func (p *Policy) DisallowedRedirectURI(uris []string) string {
	for _, u := range uris {
		if !p.AllowsRedirectURI(u) {
			return u
		}
	}
	return ""
}

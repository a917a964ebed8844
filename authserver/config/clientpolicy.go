package config

import (
	"fmt"
	"slices"
)

// ClientPolicy says which clients may ask for a login. Every list empty and
// RequireApproval false (the default) is the server without a policy: any
// metadata-document domain, any valid redirect URI, every supported scope, no
// approval. Dynamic registration itself is switched by dynamicRegistration.enabled.
type ClientPolicy struct {
	// MetadataDocumentDomains are the hosts whose Client ID Metadata Documents are
	// accepted: "example.com" (that host) or "*.example.com" (its subdomains, not
	// itself). A metadata-document client on any other host is refused before its
	// document is fetched. Empty: any host.
	MetadataDocumentDomains []string `json:"metadataDocumentDomains,omitempty"`
	// RedirectURIPatterns restrict the redirect URIs a dynamic registration may
	// register and a metadata document may list (pre-registered clients are the
	// administrator's own). "*" may be the first label of the host, the port, or
	// the end of the pattern; http patterns on a loopback host without a port allow
	// any port. Authorization requests still match the registered URIs exactly.
	// Empty: any valid redirect URI.
	RedirectURIPatterns []string `json:"redirectURIPatterns,omitempty"`
	// MaxScopes is the most scope a client of each kind may get.
	MaxScopes MaxScopes `json:"maxScopes,omitzero"`
	// RequireApproval holds every new dynamic and metadata-document client until an
	// administrator approves it (`mcpauth admin approve`, or an MCPClient with
	// spec.approveClientID): until then its logins stop at a waiting page and
	// nothing is issued. Default false.
	RequireApproval bool `json:"requireApproval,omitempty"`
}

// MaxScopes bounds the scope per kind of client. Each list is a subset of
// scopesSupported; an empty list is no bound beyond scopesSupported. A request for
// more is narrowed to the bound (RFC 6749 §3.3 lets the server issue less, and the
// token response names the scope issued), and refused with invalid_scope when
// nothing of it is within the bound.
type MaxScopes struct {
	// PreRegistered bounds clients of the configuration, the clients file and
	// MCPClients.
	PreRegistered []string `json:"preRegistered,omitempty"`
	// Dynamic bounds clients registered at /oauth/register; a registration asking
	// for more is registered with the scope narrowed.
	Dynamic []string `json:"dynamic,omitempty"`
	// MetadataDocument bounds clients identified by a metadata document URL.
	MetadataDocument []string `json:"metadataDocument,omitempty"`
}

// maxPolicyEntries bounds each list: every entry is tried on every request.
const maxPolicyEntries = 100

// IsZero reports whether p sets nothing.
func (p ClientPolicy) IsZero() bool {
	return len(p.MetadataDocumentDomains) == 0 && len(p.RedirectURIPatterns) == 0 &&
		len(p.MaxScopes.PreRegistered)+len(p.MaxScopes.Dynamic)+len(p.MaxScopes.MetadataDocument) == 0 &&
		!p.RequireApproval
}

func (c *Config) validateClientPolicy(v *validator) {
	p := &c.ClientPolicy
	if len(p.MetadataDocumentDomains) > maxPolicyEntries {
		v.addf("clientPolicy.metadataDocumentDomains", "%d entries; at most %d", len(p.MetadataDocumentDomains), maxPolicyEntries)
	}
	for i, d := range p.MetadataDocumentDomains {
		if _, err := ParseDomainPattern(d); err != nil {
			v.addf(fmt.Sprintf("clientPolicy.metadataDocumentDomains[%d]", i), "%v", err)
		}
	}
	if len(p.MetadataDocumentDomains) > 0 && !c.ClientIDMetadataDocuments.Enabled {
		v.addf("clientPolicy.metadataDocumentDomains", "set, but clientIDMetadataDocuments.enabled is false")
	}
	if len(p.RedirectURIPatterns) > maxPolicyEntries {
		v.addf("clientPolicy.redirectURIPatterns", "%d entries; at most %d", len(p.RedirectURIPatterns), maxPolicyEntries)
	}
	for i, r := range p.RedirectURIPatterns {
		if _, err := ParseRedirectPattern(r); err != nil {
			v.addf(fmt.Sprintf("clientPolicy.redirectURIPatterns[%d]", i), "%v", err)
		}
	}
	for _, k := range []struct {
		name   string
		scopes []string
	}{
		{"preRegistered", p.MaxScopes.PreRegistered},
		{"dynamic", p.MaxScopes.Dynamic},
		{"metadataDocument", p.MaxScopes.MetadataDocument},
	} {
		for j, s := range k.scopes {
			f := fmt.Sprintf("clientPolicy.maxScopes.%s[%d]", k.name, j)
			switch {
			case !slices.Contains(c.ScopesSupported, s):
				v.addf(f, "%q is not in scopesSupported", s)
			case slices.Index(k.scopes, s) != j:
				v.addf(f, "duplicate scope %q", s)
			}
		}
	}
	if p.RequireApproval && !c.DynamicRegistration.Enabled && !c.ClientIDMetadataDocuments.Enabled {
		v.addf("clientPolicy.requireApproval", "set, but dynamic registration and metadata documents are both off: no client would need approval")
	}
}

package clientpolicy

import (
	"testing"

	"github.com/mcpauth/mcpauth/authserver/config"
)

func TestMetadataDocumentDomains(t *testing.T) {
	p, err := New(config.ClientPolicy{MetadataDocumentDomains: []string{"*.Example.com", "claude.ai"}})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{
		"https://app.example.com/client.json":        true,
		"https://a.b.example.com/client.json":        true,
		"https://APP.EXAMPLE.COM/client.json":        true,
		"https://example.com/client.json":            false, // the wildcard is for subdomains only
		"https://claude.ai/oauth/metadata.json":      true,
		"https://evil.claude.ai/oauth/metadata.json": false,
		"https://notexample.com/client.json":         false,
		"https://example.com.evil.test/client.json":  false,
		"https://evil.test/app.example.com":          false,
		"https://claude.ai:8443/m.json":              true, // hosts are matched, not ports
	} {
		if got := p.AllowsMetadataDocument(id); got != want {
			t.Errorf("AllowsMetadataDocument(%q) = %v, want %v", id, got, want)
		}
	}
	if !(*Policy)(nil).AllowsMetadataDocument("https://any.test/x") {
		t.Error("a nil policy refuses a domain")
	}
}

func TestRedirectURIs(t *testing.T) {
	p, err := New(config.ClientPolicy{RedirectURIPatterns: []string{"http://127.0.0.1/*", "https://*.example.com/oauth/*"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.DisallowedRedirectURI([]string{"http://127.0.0.1:4000/cb", "https://a.example.com/oauth/cb"}); got != "" {
		t.Errorf("allowed URIs refused: %q", got)
	}
	if got := p.DisallowedRedirectURI([]string{"http://127.0.0.1/cb", "https://evil.test/oauth/cb"}); got != "https://evil.test/oauth/cb" {
		t.Errorf("DisallowedRedirectURI = %q", got)
	}
	if (*Policy)(nil).DisallowedRedirectURI([]string{"https://evil.test/"}) != "" {
		t.Error("a nil policy restricts redirect URIs")
	}
}

func TestApprovalAndScopesByKind(t *testing.T) {
	p, err := New(config.ClientPolicy{RequireApproval: true, MaxScopes: config.MaxScopes{Dynamic: []string{"mcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.NeedsApproval(PreRegistered) || !p.NeedsApproval(Dynamic) || !p.NeedsApproval(MetadataDocument) {
		t.Error("approval applies to dynamic and metadata-document clients only")
	}
	if got := p.MaxScopes(Dynamic); len(got) != 1 || got[0] != "mcp" {
		t.Errorf("MaxScopes(Dynamic) = %v", got)
	}
	if p.MaxScopes(MetadataDocument) != nil || p.MaxScopes(PreRegistered) != nil {
		t.Error("an absent limit is no limit")
	}
	if (*Policy)(nil).NeedsApproval(Dynamic) {
		t.Error("a nil policy needs approval")
	}
	if p, err := New(config.ClientPolicy{}); p != nil || err != nil {
		t.Errorf("an empty policy compiles to %v, %v; want nil", p, err)
	}
	if _, err := New(config.ClientPolicy{RedirectURIPatterns: []string{"http://evil.example/"}, MetadataDocumentDomains: []string{"*.com"}}); err == nil {
		t.Error("New accepted bad patterns")
	}
}

package resource

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// wellKnownPRM is the RFC 9728 §3 well-known URI suffix.
const wellKnownPRM = "/.well-known/oauth-protected-resource"

// Metadata returns the RFC 9728 protected-resource metadata this Verifier serves.
func (v *Verifier) Metadata() *oauthex.ProtectedResourceMetadata {
	return &oauthex.ProtectedResourceMetadata{
		Resource:             v.cfg.Resource,
		AuthorizationServers: slices.Clone(v.cfg.AuthorizationServers),
		ScopesSupported:      slices.Clone(v.cfg.ScopesSupported),
		// Only the Authorization header: the MCP specification forbids tokens in
		// the query string, and MCP requests carry JSON bodies, not forms.
		BearerMethodsSupported: []string{"header"},
		ResourceName:           v.cfg.ResourceName,
		ResourceDocumentation:  v.cfg.ResourceDocumentation,
	}
}

func (v *Verifier) encodeMetadata() ([]byte, error) {
	b, err := json.Marshal(v.Metadata())
	if err != nil {
		return nil, fmt.Errorf("encode protected resource metadata: %w", err)
	}
	return b, nil
}

// MetadataURL is where the metadata lives for this resource, the URL sent as
// resource_metadata in every challenge. RFC 9728 §3.1: the well-known suffix is
// inserted between the host and the resource's path ("any terminating slash (/)
// following the host component MUST be removed" first), so
// https://mcp.example.com/mcp has its metadata at
// https://mcp.example.com/.well-known/oauth-protected-resource/mcp.
func (v *Verifier) MetadataURL() string {
	u, _ := url.Parse(v.cfg.Resource) // validated in New
	path := u.EscapedPath()
	if path == "/" {
		path = ""
	}
	return u.Scheme + "://" + u.Host + wellKnownPRM + path + queryPart(u)
}

func queryPart(u *url.URL) string {
	if u.RawQuery == "" {
		return ""
	}
	return "?" + u.RawQuery
}

// MetadataPaths are the paths the metadata is served at: the path-inserted one
// (MetadataURL's) and the root, which clients try when they find no
// resource_metadata in a challenge. For a resource without a path they are one.
func (v *Verifier) MetadataPaths() []string {
	u, _ := url.Parse(v.cfg.Resource)
	if u.Path == "" || u.Path == "/" {
		return []string{wellKnownPRM}
	}
	return []string{wellKnownPRM + u.Path, wellKnownPRM}
}

// MountMetadata registers MetadataHandler on mux at every path of MetadataPaths.
// Both serve the same document, whose resource is the full resource identifier:
// clients that follow resource_metadata (every one here, since every challenge has it)
// read the path-inserted URL, and a client on the root URL still learns the resource
// it must ask tokens for.
func (v *Verifier) MountMetadata(mux *http.ServeMux) {
	h := v.MetadataHandler()
	for _, p := range v.MetadataPaths() {
		mux.Handle(p, h)
	}
}

// MetadataHandler serves the metadata as JSON to GET and HEAD, with CORS open to any
// origin: the document is public and browser-based clients fetch it cross-origin
// (RFC 9728 §3 has clients read it with a plain GET).
func (v *Verifier) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, MCP-Protocol-Version")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodOptions:
			w.WriteHeader(http.StatusNoContent)
			return
		default:
			h.Set("Allow", strings.Join([]string{http.MethodGet, http.MethodHead, http.MethodOptions}, ", "))
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(v.metadata)
		}
	})
}

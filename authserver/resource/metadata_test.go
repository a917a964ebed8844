package resource

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestProtectedResourceMetadata(t *testing.T) {
	as := newFakeAS(t)
	v := newTestVerifier(t, as, newClock(), func(c *Config) {
		c.ScopesSupported = []string{"mcp", "files:read"}
	})
	mux := http.NewServeMux()
	v.MountMetadata(mux)
	want := map[string]any{
		"resource":                 testResource,
		"authorization_servers":    []any{as.issuer},
		"scopes_supported":         []any{"mcp", "files:read"},
		"bearer_methods_supported": []any{"header"},
		"resource_name":            "Example MCP server",
		"resource_documentation":   "https://docs.example.com/mcp",
	}

	tests := []struct {
		name string
		path string
	}{
		{"is served at the path-inserted well-known URL", "/.well-known/oauth-protected-resource/mcp"},
		{"is served at the root well-known URL", "/.well-known/oauth-protected-resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(mux, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if o := rec.Header().Get("Access-Control-Allow-Origin"); o != "*" {
				t.Errorf("Access-Control-Allow-Origin %q, want *", o)
			}
			if got := decodeJSON(t, rec.Body.Bytes()); !reflect.DeepEqual(got, want) {
				t.Errorf("metadata\n got %v\nwant %v", got, want)
			}
		})
	}

	t.Run("answers a CORS preflight and refuses POST", func(t *testing.T) {
		if rec := serve(mux, httptest.NewRequest(http.MethodOptions, tests[0].path, nil)); rec.Code != http.StatusNoContent {
			t.Errorf("OPTIONS: status %d, want 204", rec.Code)
		}
		if rec := serve(mux, httptest.NewRequest(http.MethodPost, tests[0].path, nil)); rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST: status %d, want 405", rec.Code)
		}
	})
}

func TestMetadataLocation(t *testing.T) {
	tests := []struct {
		name      string
		resource  string
		wantURL   string
		wantPaths []string
	}{
		{"a resource with a path has its metadata under the path-inserted URL",
			"https://mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
			[]string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"}},
		{"a deeper path is inserted whole and the host is lower-cased",
			"https://MCP.Example.com:8443/team/a/mcp", "https://mcp.example.com:8443/.well-known/oauth-protected-resource/team/a/mcp",
			[]string{"/.well-known/oauth-protected-resource/team/a/mcp", "/.well-known/oauth-protected-resource"}},
		{"a resource without a path has only the root URL",
			"https://mcp.example.com", "https://mcp.example.com/.well-known/oauth-protected-resource",
			[]string{"/.well-known/oauth-protected-resource"}},
		{"a lone terminating slash is removed before insertion",
			"http://127.0.0.1:8080/", "http://127.0.0.1:8080/.well-known/oauth-protected-resource",
			[]string{"/.well-known/oauth-protected-resource"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(Config{Resource: tt.resource, AuthorizationServers: []string{"https://auth.example.com"},
				ClientID: "id", ClientSecret: "secret"})
			if err != nil {
				t.Fatal(err)
			}
			if got := v.MetadataURL(); got != tt.wantURL {
				t.Errorf("MetadataURL %q, want %q", got, tt.wantURL)
			}
			if got := v.MetadataPaths(); !slices.Equal(got, tt.wantPaths) {
				t.Errorf("MetadataPaths %q, want %q", got, tt.wantPaths)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := func() Config {
		return Config{Resource: testResource, AuthorizationServers: []string{"https://auth.example.com"},
			ClientID: "id", ClientSecret: "secret", RequiredScopes: []string{"mcp"}}
	}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"a missing resource", func(c *Config) { c.Resource = "" }, "resource"},
		{"a relative resource", func(c *Config) { c.Resource = "/mcp" }, "resource"},
		{"a resource with a fragment", func(c *Config) { c.Resource = testResource + "#x" }, "fragment"},
		{"no authorization server", func(c *Config) { c.AuthorizationServers = nil }, "authorization server"},
		{"an authorization server that is not a URL", func(c *Config) { c.AuthorizationServers = []string{"auth.example.com"} }, "authorization server"},
		{"no introspection credentials", func(c *Config) { c.ClientSecret = "" }, "credentials"},
		{"offline_access among the required scopes", func(c *Config) { c.RequiredScopes = []string{"mcp", "offline_access"} }, "offline_access"},
		{"offline_access among the supported scopes", func(c *Config) { c.ScopesSupported = []string{"offline_access"} }, "offline_access"},
		{"a scope that would break the challenge header", func(c *Config) { c.RequiredScopes = []string{`a"b`} }, "not a valid scope"},
		{"a JWT leeway that outlasts the revocation feed's memory", func(c *Config) { c.JWTLeeway = 2 * MaxJWTLeeway }, "JWT leeway"},
	}
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			cfg := good()
			tt.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
	t.Run("accepts the good config and advertises the required scopes by default", func(t *testing.T) {
		v, err := New(good())
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Metadata().ScopesSupported; !slices.Equal(got, []string{"mcp"}) {
			t.Errorf("scopes_supported %q, want [mcp]", got)
		}
	})
}

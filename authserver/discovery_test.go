package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMetadataIsServedAtBothWellKnownPaths(t *testing.T) {
	e := newEnv(t)
	var docs []string
	for _, p := range []string{wellKnownAS, wellKnownOIDC} {
		rec := e.get(p)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d", p, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", p, ct)
		}
		if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS header; browser-based MCP clients read metadata", p)
		}
		docs = append(docs, rec.Body.String())
	}
	if docs[0] != docs[1] {
		t.Errorf("documents differ:\n%s\n%s", docs[0], docs[1])
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(docs[0]), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                 testIssuer,
		"authorization_endpoint": testIssuer + "/oauth/authorize",
		"token_endpoint":         testIssuer + "/oauth/token",
		"registration_endpoint":  testIssuer + "/oauth/register",
		"introspection_endpoint": testIssuer + "/oauth/introspect",
		"revocation_endpoint":    testIssuer + "/oauth/revoke",
		"authorization_response_iss_parameter_supported": true,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	wantLists := map[string][]string{
		"response_types_supported":              {"code"},
		"grant_types_supported":                 {"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange", "client_credentials"},
		"code_challenge_methods_supported":      {"S256"},
		"token_endpoint_auth_methods_supported": {"none", "client_secret_basic", "client_secret_post"},
		"scopes_supported":                      {"read", "write", "offline_access"},
	}
	for k, v := range wantLists {
		if got := stringList(m[k]); !slices.Equal(got, v) {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if _, ok := m["client_id_metadata_document_supported"]; ok {
		t.Error("client_id_metadata_document_supported advertised without a CIMD fetcher")
	}
}

func stringList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestMetadataFollowsOptions(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Options)
		check func(t *testing.T, m Metadata)
	}{
		{"plain PKCE is advertised only when allowed", func(o *Options) { o.AllowPKCEPlain = true }, func(t *testing.T, m Metadata) {
			if !slices.Equal(m.CodeChallengeMethodsSupported, []string{"S256", "plain"}) {
				t.Errorf("methods %v", m.CodeChallengeMethodsSupported)
			}
		}},
		{"no registration endpoint when registration is off", func(o *Options) { o.DynamicRegistration = false }, func(t *testing.T, m Metadata) {
			if m.RegistrationEndpoint != "" {
				t.Errorf("registration_endpoint %q", m.RegistrationEndpoint)
			}
		}},
		{"CIMD is advertised when a fetcher is set", func(o *Options) { o.CIMD = fakeCIMD{} }, func(t *testing.T, m Metadata) {
			if !m.ClientIDMetadataDocumentSupported {
				t.Error("client_id_metadata_document_supported false")
			}
		}},
		{"service documentation is published", func(o *Options) { o.ServiceDocumentation = "https://docs.example.com" }, func(t *testing.T, m Metadata) {
			if m.ServiceDocumentation != "https://docs.example.com" {
				t.Errorf("service_documentation %q", m.ServiceDocumentation)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mod)
			var m Metadata
			decodeJSON(t, e.get(wellKnownAS).Body, &m)
			tt.check(t, m)
		})
	}
}

func TestIssuerWithPathServesMetadataAtEveryDiscoveryLocation(t *testing.T) {
	const issuer = "https://as.example.com/tenant-a"
	e := newEnv(t, func(o *Options) { o.Issuer = issuer })
	for _, p := range []string{
		"/.well-known/oauth-authorization-server/tenant-a",
		"/.well-known/openid-configuration/tenant-a",
		"/tenant-a/.well-known/openid-configuration",
	} {
		rec := e.get(p)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d", p, rec.Code)
		}
		var m Metadata
		decodeJSON(t, rec.Body, &m)
		if m.Issuer != issuer || m.TokenEndpoint != issuer+"/oauth/token" {
			t.Errorf("%s: issuer %q token endpoint %q", p, m.Issuer, m.TokenEndpoint)
		}
	}
	// The root document would carry an issuer the client did not derive it from.
	if rec := e.get(wellKnownAS); rec.Code != http.StatusNotFound {
		t.Errorf("root metadata: status %d, want 404", rec.Code)
	}
	if rec := e.get("/tenant-a/oauth/authorize"); rec.Code != http.StatusBadRequest {
		t.Errorf("prefixed authorize endpoint: status %d, want 400 (no client)", rec.Code)
	}
}

func TestMetadataRefusesOtherMethods(t *testing.T) {
	e := newEnv(t)
	rec := e.postForm(wellKnownAS, nil)
	wantOAuthError(t, rec, http.StatusMethodNotAllowed, "invalid_request")
	if allow := rec.Header().Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow %q", allow)
	}
}

func TestNewRefusesInvalidOptions(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*Options)
		field string
	}{
		{"an issuer with a trailing slash", func(o *Options) { o.Issuer = "https://as.example.com/" }, "Issuer"},
		{"an issuer with a query", func(o *Options) { o.Issuer = "https://as.example.com?x=1" }, "Issuer"},
		{"an issuer with a fragment", func(o *Options) { o.Issuer = "https://as.example.com#x" }, "Issuer"},
		{"a plain-http issuer on a public host", func(o *Options) { o.Issuer = "http://as.example.com" }, "Issuer"},
		{"a relative issuer", func(o *Options) { o.Issuer = "/auth" }, "Issuer"},
		{"a short master key", func(o *Options) { o.MasterKey = []byte("short") }, "MasterKey"},
		{"no store", func(o *Options) { o.Store = nil }, "Store"},
		{"no upstream", func(o *Options) { o.Upstream = nil }, "Upstream"},
		{"a default scope that is not supported", func(o *Options) { o.DefaultScopes = []string{"admin"} }, "DefaultScopes"},
		{"a malformed scope", func(o *Options) { o.ScopesSupported = []string{`a"b`} }, "ScopesSupported"},
		{"a callback path that is not a path", func(o *Options) { o.CallbackPath = "callback" }, "CallbackPath"},
		{"a callback path on another endpoint", func(o *Options) { o.CallbackPath = "/oauth/token" }, "CallbackPath"},
		{"a negative TTL", func(o *Options) { o.AccessTokenTTL = -time.Second }, "AccessTokenTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{
				Issuer: testIssuer, Store: &testStore{}, Upstream: newFakeUpstream(newClock().Now()),
				MasterKey: testKey, ScopesSupported: []string{"read"},
			}
			tt.mod(&opts)
			_, err := New(opts)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("New: %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

func TestNewAcceptsPlainHTTPOnLoopback(t *testing.T) {
	for _, issuer := range []string{"http://127.0.0.1:8080", "http://localhost:9000/auth", "http://[::1]:8080"} {
		e := newEnv(t, func(o *Options) { o.Issuer = issuer })
		if e.srv.cookies.secure || strings.HasPrefix(e.srv.cookies.flow, "__Host-") {
			t.Errorf("%s: cookies %+v; __Host- needs Secure, which http cannot set", issuer, e.srv.cookies)
		}
	}
	e := newEnv(t)
	if !e.srv.cookies.secure || e.srv.cookies.flow != "__Host-mcpauth_flow" {
		t.Errorf("https issuer: cookies %+v", e.srv.cookies)
	}
}

// fakeCIMD serves metadata documents from a map.
type fakeCIMD map[string]*ClientMetadataDocument

func (f fakeCIMD) Fetch(_ context.Context, id string) (*ClientMetadataDocument, error) {
	if d, ok := f[id]; ok {
		return d, nil
	}
	return nil, errUnknownClient
}

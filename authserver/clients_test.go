package authserver

import (
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestStaticClientsValidateAndReplaceAtomically(t *testing.T) {
	reg, err := NewStaticClients(publicClient)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("s"))
	tests := []struct {
		name string
		c    StaticClient
		err  string
	}{
		{"no ID", StaticClient{RedirectURIs: []string{webRedirect}}, "empty ID"},
		{"no redirect URI", StaticClient{ID: "a"}, "no redirect URIs"},
		{"an http redirect URI on a public host", StaticClient{ID: "a", RedirectURIs: []string{"http://app.example.com/cb"}}, "loopback"},
		{"an unknown grant", StaticClient{ID: "a", RedirectURIs: []string{webRedirect}, GrantTypes: []string{"authorization_code", "password"}}, "grant type"},
		{"a confidential method without a secret", StaticClient{ID: "a", RedirectURIs: []string{webRedirect}, TokenEndpointAuthMethod: AuthMethodPost}, "needs a secret"},
		{"a public client with a secret", StaticClient{ID: "a", RedirectURIs: []string{webRedirect}, Secret: "s", TokenEndpointAuthMethod: AuthMethodNone}, "no secret"},
		{"both a secret and its digest", StaticClient{ID: "a", RedirectURIs: []string{webRedirect}, Secret: "s", SecretSHA256: sum[:]}, "not both"},
		{"a digest of the wrong size", StaticClient{ID: "a", RedirectURIs: []string{webRedirect}, SecretSHA256: []byte{1, 2}}, "bytes"},
		{"an unknown auth method", StaticClient{ID: "a", RedirectURIs: []string{webRedirect}, TokenEndpointAuthMethod: "private_key_jwt"}, "auth method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := reg.Replace([]StaticClient{trustedClient, tt.c})
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Replace: %v, want %q", err, tt.err)
			}
			if _, ok, _ := reg.Lookup(t.Context(), publicClient.ID); !ok {
				t.Error("a failed Replace dropped the previous clients")
			}
			if _, ok, _ := reg.Lookup(t.Context(), trustedClient.ID); ok {
				t.Error("a failed Replace installed part of the new clients")
			}
		})
	}
	if err := reg.Replace([]StaticClient{trustedClient, trustedClient}); err == nil {
		t.Error("duplicate IDs accepted")
	}
	if err := reg.Replace([]StaticClient{trustedClient}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := reg.Lookup(t.Context(), publicClient.ID); ok {
		t.Error("Replace kept a client that is no longer listed")
	}
}

func TestStaticClientWithASecretDigestAuthenticates(t *testing.T) {
	sum := sha256.Sum256([]byte("digest-secret"))
	c := StaticClient{ID: "digest-app", SecretSHA256: sum[:], RedirectURIs: []string{webRedirect}, Trusted: true}
	reg, err := NewStaticClients(c)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.Clients = reg })
	p := newPKCE()
	code := e.code(c.ID, webRedirect, p, nil)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}, "code_verifier": {p.verifier}}
	wantOAuthError(t, e.postForm(pathToken, form, c.ID, "wrong"), http.StatusUnauthorized, "invalid_client")
	if tok := e.exchange(c.ID, webRedirect, code, p, c.ID, "digest-secret"); tok.AccessToken == "" {
		t.Fatal("no token")
	}
}

func TestMetadataDocumentClients(t *testing.T) {
	const id = "https://tools.example.org/client.json"
	docs := fakeCIMD{
		id:                                    {ClientID: id, ClientName: "Doc", RedirectURIs: []string{webRedirect}},
		"https://tools.example.org/liar.json": {ClientID: "https://tools.example.org/other.json", RedirectURIs: []string{webRedirect}},
		"https://tools.example.org/jwt.json":  {ClientID: "https://tools.example.org/jwt.json", RedirectURIs: []string{webRedirect}, TokenEndpointAuthMethod: "private_key_jwt"},
	}
	e := newEnv(t, func(o *Options) { o.CIMD = docs })
	tests := []struct {
		name, clientID string
		consent        bool
	}{
		{"a valid document gets the consent page", id, true},
		{"a document naming another client_id is refused", "https://tools.example.org/liar.json", false},
		{"a document with a secret-based auth method is refused", "https://tools.example.org/jwt.json", false},
		{"an unknown document is refused", "https://tools.example.org/missing.json", false},
		{"an https URL without a path is not a metadata client", "https://tools.example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.browser().get(authorizeURL(authzQuery(tt.clientID, webRedirect, newPKCE())))
			if got := rec.Code == http.StatusOK; got != tt.consent {
				t.Fatalf("status %d", rec.Code)
			}
			if rec.Header().Get("Location") != "" {
				t.Fatal("redirected")
			}
		})
	}
	// And the whole flow works for it, as a public client.
	p := newPKCE()
	code := e.code(id, webRedirect, p, nil)
	if tok := e.exchange(id, webRedirect, code, p); tok.RefreshToken == "" {
		t.Error("a metadata client without grant_types gets no refresh token")
	}
}

func TestMetricsCanBeServedSeparately(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.OmitMetricsEndpoint = true })
	if rec := e.get("/metrics"); rec.Code != http.StatusNotFound {
		t.Errorf("/metrics: %d, want 404", rec.Code)
	}
	e.get(wellKnownAS)
	rec := httpRecorder(e.srv.MetricsHandler(), "/metrics")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "mcpauth_http_requests_total") {
		t.Errorf("MetricsHandler: %d", rec.Code)
	}
}

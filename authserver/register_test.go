package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// registration is the decoded answer of the registration endpoint.
type registration struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name"`
	Scope                   string   `json:"scope"`
	ApplicationType         string   `json:"application_type"`
}

func (e *env) register(body string) registration {
	e.t.Helper()
	rec := e.postJSON(pathRegister, body)
	if rec.Code != http.StatusCreated {
		e.t.Fatalf("register: %d %s", rec.Code, rec.Body.String())
	}
	if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
		e.t.Errorf("headers %v", rec.Header())
	}
	var r registration
	decodeJSON(e.t, rec.Body, &r)
	return r
}

func TestRegisterAPublicClient(t *testing.T) {
	e := newEnv(t)
	r := e.register(`{"client_name":"Claude","redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"none",
		"grant_types":["authorization_code","refresh_token"],"scope":"read","unknown_field":[1,2]}`)
	if !strings.HasPrefix(r.ClientID, prefixClientID) || r.ClientSecret != "" || r.ClientSecretExpiresAt != nil {
		t.Errorf("credentials %+v; a public client gets no secret", r)
	}
	if r.ClientIDIssuedAt != e.clock.Now().Unix() || r.ClientName != "Claude" || r.Scope != "read" || r.ApplicationType != AppTypeWeb {
		t.Errorf("metadata %+v", r)
	}
	if strings.Join(r.GrantTypes, ",") != "authorization_code,refresh_token" || strings.Join(r.ResponseTypes, ",") != "code" {
		t.Errorf("grant types %v response types %v", r.GrantTypes, r.ResponseTypes)
	}
	// The client works, on any loopback port.
	p := newPKCE()
	code := e.code(r.ClientID, "http://127.0.0.1:33333/callback", p, nil)
	if tok := e.exchange(r.ClientID, "http://127.0.0.1:33333/callback", code, p); tok.RefreshToken == "" {
		t.Error("no refresh token for a client registered with the refresh_token grant")
	}
}

func TestRegisterAConfidentialClientByDefault(t *testing.T) {
	e := newEnv(t)
	r := e.register(`{"redirect_uris":["https://app.example.com/cb"]}`)
	// RFC 7591 §2 defaults: client_secret_basic, authorization_code only.
	if r.TokenEndpointAuthMethod != AuthMethodBasic || !strings.HasPrefix(r.ClientSecret, prefixSecret) {
		t.Fatalf("registration %+v", r)
	}
	if r.ClientSecretExpiresAt == nil || *r.ClientSecretExpiresAt != e.clock.Now().Add(DefaultRegistrationTTL).Unix() {
		t.Errorf("client_secret_expires_at %v", r.ClientSecretExpiresAt)
	}
	if strings.Join(r.GrantTypes, ",") != "authorization_code" {
		t.Errorf("grant types %v", r.GrantTypes)
	}
	if strings.Contains(e.store.recorded(), r.ClientSecret) {
		t.Error("the client secret reached the store in clear")
	}
	p := newPKCE()
	code := e.code(r.ClientID, webRedirect, p, nil)
	tok := e.exchange(r.ClientID, webRedirect, code, p, r.ClientID, r.ClientSecret)
	if tok.RefreshToken != "" {
		t.Error("a refresh token for a client registered without the refresh_token grant")
	}
	bad := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}
	wantOAuthError(t, e.postForm(pathToken, bad, r.ClientID, "wrong"), http.StatusUnauthorized, "invalid_client")
}

func TestRegisterANativeClient(t *testing.T) {
	e := newEnv(t)
	r := e.register(`{"application_type":"native","redirect_uris":["com.example.app:/oauth","http://[::1]/cb","https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`)
	if r.ApplicationType != AppTypeNative || len(r.RedirectURIs) != 3 {
		t.Fatalf("registration %+v", r)
	}
	r = e.register(`{"redirect_uris":["com.example.app:/oauth"],"token_endpoint_auth_method":"none"}`)
	if r.ApplicationType != AppTypeNative {
		t.Errorf("application_type %q; private-use redirect URIs make a native app", r.ApplicationType)
	}
}

func TestRegisterRefusesInvalidMetadata(t *testing.T) {
	tests := []struct {
		name string
		body string
		code string
	}{
		{"no redirect URIs", `{"client_name":"x"}`, "invalid_redirect_uri"},
		{"an empty redirect URI list", `{"redirect_uris":[]}`, "invalid_redirect_uri"},
		{"http on a public host", `{"redirect_uris":["http://app.example.com/cb"]}`, "invalid_redirect_uri"},
		{"a fragment", `{"redirect_uris":["https://app.example.com/cb#x"]}`, "invalid_redirect_uri"},
		{"a wildcard", `{"redirect_uris":["https://*.example.com/cb"]}`, "invalid_redirect_uri"},
		{"a javascript: URI", `{"redirect_uris":["javascript:alert(1)"],"application_type":"native"}`, "invalid_redirect_uri"},
		{"a data: URI", `{"redirect_uris":["data:text/html,hi"],"application_type":"native"}`, "invalid_redirect_uri"},
		{"a file: URI", `{"redirect_uris":["file:///etc/passwd"],"application_type":"native"}`, "invalid_redirect_uri"},
		{"a private-use scheme for a web app", `{"redirect_uris":["com.example.app:/cb"],"application_type":"web"}`, "invalid_redirect_uri"},
		{"a private-use scheme that is not a reverse domain", `{"redirect_uris":["myapp:/cb"],"application_type":"native"}`, "invalid_redirect_uri"},
		{"a relative URI", `{"redirect_uris":["/cb"]}`, "invalid_redirect_uri"},
		{"user info in the URI", `{"redirect_uris":["https://user@app.example.com/cb"]}`, "invalid_redirect_uri"},
		{"a space in the URI", `{"redirect_uris":["https://app.example.com/c b"]}`, "invalid_redirect_uri"},
		{"an unknown application type", `{"redirect_uris":["https://app.example.com/cb"],"application_type":"desktop"}`, "invalid_client_metadata"},
		{"private_key_jwt", `{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, "invalid_client_metadata"},
		{"the client_credentials grant", `{"redirect_uris":["https://app.example.com/cb"],"grant_types":["client_credentials"]}`, "invalid_client_metadata"},
		{"refresh_token without authorization_code", `{"redirect_uris":["https://app.example.com/cb"],"grant_types":["refresh_token"]}`, "invalid_client_metadata"},
		{"the token response type", `{"redirect_uris":["https://app.example.com/cb"],"response_types":["token"]}`, "invalid_client_metadata"},
		{"a client name that is too long", `{"redirect_uris":["https://app.example.com/cb"],"client_name":"` + strings.Repeat("n", 201) + `"}`, "invalid_client_metadata"},
		{"a client name with control characters", `{"redirect_uris":["https://app.example.com/cb"],"client_name":"a\u0007b"}`, "invalid_client_metadata"},
		{"an unsupported scope", `{"redirect_uris":["https://app.example.com/cb"],"scope":"read admin"}`, "invalid_client_metadata"},
		{"a javascript: logo", `{"redirect_uris":["https://app.example.com/cb"],"logo_uri":"javascript:alert(1)"}`, "invalid_client_metadata"},
		{"redirect_uris as a string", `{"redirect_uris":"https://app.example.com/cb"}`, "invalid_client_metadata"},
		{"a body that is not JSON", `redirect_uris=https://app.example.com/cb`, "invalid_client_metadata"},
		{"a JSON array", `[]`, "invalid_client_metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			wantOAuthError(t, e.postJSON(pathRegister, tt.body), http.StatusBadRequest, tt.code)
			if strings.Contains(e.store.recorded(), "CreateClient") {
				t.Error("an invalid registration reached the store")
			}
		})
	}
}

func TestRegisterRefusesMalformedRequests(t *testing.T) {
	e := newEnv(t)
	form := e.postForm(pathRegister, url.Values{"redirect_uris": {webRedirect}})
	wantOAuthError(t, form, http.StatusBadRequest, "invalid_client_metadata")
	big := e.postJSON(pathRegister, `{"client_name":"`+strings.Repeat("x", maxRegistrationBody)+`"}`)
	wantOAuthError(t, big, http.StatusRequestEntityTooLarge, "invalid_request")
	get := e.get(pathRegister)
	wantOAuthError(t, get, http.StatusMethodNotAllowed, "invalid_request")
}

func TestRegisterIsAbsentWhenDisabled(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.DynamicRegistration = false })
	if rec := e.postJSON(pathRegister, `{"redirect_uris":["https://app.example.com/cb"]}`); rec.Code != http.StatusNotFound {
		t.Fatalf("status %d, want 404", rec.Code)
	}
}

func TestRegisterAnswers503WhenTheStoreIsDown(t *testing.T) {
	e := newEnv(t)
	e.store.down.Store(true)
	wantOAuthError(t, e.postJSON(pathRegister, `{"redirect_uris":["https://app.example.com/cb"]}`), http.StatusServiceUnavailable, "temporarily_unavailable")
}

func TestRegisteredClientsExpireAfterTheRegistrationTTL(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RegistrationTTL = time.Hour })
	r := e.register(`{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`)
	e.clock.Advance(time.Hour + time.Second)
	rec := e.get(pathAuthorize + "?" + authzQuery(r.ClientID, webRedirect, newPKCE()).Encode())
	if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
		t.Fatalf("status %d; an expired registration must be unknown", rec.Code)
	}
}

func TestRedirectURIValidationPerApplicationType(t *testing.T) {
	tests := []struct {
		uri     string
		web, na bool // valid for web, for native
	}{
		{"https://app.example.com/cb", true, true},
		{"http://127.0.0.1:8080/cb", true, true},
		{"http://localhost/cb", true, true},
		{"http://[::1]/cb", true, true},
		{"http://192.168.1.2/cb", false, false},
		{"com.example.app:/cb", false, true},
		{"com.example.app:cb", false, true},
		{"JavaScript:alert(1)", false, false},
		{"https://app.example.com/cb#", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			if err := validateRedirectURI(tt.uri, AppTypeWeb); (err == nil) != tt.web {
				t.Errorf("web: %v", err)
			}
			if err := validateRedirectURI(tt.uri, AppTypeNative); (err == nil) != tt.na {
				t.Errorf("native: %v", err)
			}
		})
	}
}

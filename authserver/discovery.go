package authserver

import (
	"encoding/json"
	"net/http"
)

// Metadata is the RFC 8414 authorization server metadata document.
type Metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	JWKSURI                           string   `json:"jwks_uri,omitempty"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethods  []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	ServiceDocumentation              string   `json:"service_documentation,omitempty"`
	AuthorizationResponseIssParameter bool     `json:"authorization_response_iss_parameter_supported"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported,omitempty"`
}

// Metadata returns the document served at the well-known paths.
func (s *Server) Metadata() Metadata {
	methods := []string{"S256"}
	if s.opts.AllowPKCEPlain {
		methods = append(methods, "plain")
	}
	m := Metadata{
		Issuer:                            s.issuer,
		AuthorizationEndpoint:             s.endpoint(pathAuthorize),
		TokenEndpoint:                     s.endpoint(pathToken),
		IntrospectionEndpoint:             s.endpoint(pathIntrospect),
		RevocationEndpoint:                s.endpoint(pathRevoke),
		ScopesSupported:                   s.opts.ScopesSupported,
		ResponseTypesSupported:            []string{responseTypeCode},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{grantAuthCode, grantRefresh, grantTokenExchange, grantClientCredentials},
		CodeChallengeMethodsSupported:     methods,
		TokenEndpointAuthMethodsSupported: []string{AuthMethodNone, AuthMethodBasic, AuthMethodPost},
		// Introspection is for resource servers holding credentials (RFC 7662 §2.1).
		IntrospectionEndpointAuthMethods: []string{AuthMethodBasic, AuthMethodPost},
		// Public clients revoke their own tokens with only their client_id (RFC 7009 §2.1).
		RevocationEndpointAuthMethods: []string{AuthMethodNone, AuthMethodBasic, AuthMethodPost},
		ServiceDocumentation:          s.opts.ServiceDocumentation,
		// RFC 9207: every authorization response, errors included, carries iss.
		AuthorizationResponseIssParameter: true,
		ClientIDMetadataDocumentSupported: s.opts.CIMD != nil,
	}
	if s.opts.DynamicRegistration {
		m.RegistrationEndpoint = s.endpoint(pathRegister)
	}
	if s.signing != nil {
		m.JWKSURI = s.endpoint(pathJWKS)
	}
	if s.opts.DeviceAuthorization.Enabled {
		m.DeviceAuthorizationEndpoint = s.endpoint(pathDeviceAuthorization)
		m.GrantTypesSupported = append(m.GrantTypesSupported, grantDeviceCode)
	}
	return m
}

func (s *Server) renderMetadata() ([]byte, error) {
	return json.Marshal(s.Metadata())
}

// handleMetadata serves the RFC 8414 document. It is public, so it allows any origin
// (browser-based MCP clients read it) and may be cached briefly.
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	if preflight(w, r) || !s.allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(s.metadata)
}

// preflight answers CORS for the endpoints a browser-based MCP client calls directly
// (metadata, token, registration, revocation). None of them uses cookies, so any origin
// may call them; credentials are never allowed. It returns true when it answered an
// OPTIONS preflight.
func preflight(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodOptions {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
	return true
}

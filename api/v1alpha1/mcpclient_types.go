package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TokenEndpointAuthMethod is how a client authenticates at the token endpoint.
// +kubebuilder:validation:Enum=none;client_secret_basic;client_secret_post
type TokenEndpointAuthMethod string

// Client authentication methods (RFC 7591 §2).
const (
	AuthMethodNone              TokenEndpointAuthMethod = "none"
	AuthMethodClientSecretBasic TokenEndpointAuthMethod = "client_secret_basic"
	AuthMethodClientSecretPost  TokenEndpointAuthMethod = "client_secret_post"
)

// GrantType is an OAuth grant a client may use.
// +kubebuilder:validation:Enum=authorization_code;refresh_token;client_credentials;"urn:ietf:params:oauth:grant-type:device_code"
type GrantType string

// Grant types.
const (
	GrantAuthorizationCode GrantType = "authorization_code"
	GrantRefreshToken      GrantType = "refresh_token"
	// GrantClientCredentials (RFC 6749 §4.4): a confidential client acting for
	// itself, with no user and no upstream token (an agent, a batch job).
	GrantClientCredentials GrantType = "client_credentials"
	// GrantDeviceCode is the device authorization grant (RFC 8628), for command-line
	// clients on machines without a browser; the OAuthProvider must have
	// spec.server.deviceFlow.enabled.
	GrantDeviceCode GrantType = "urn:ietf:params:oauth:grant-type:device_code"
)

// MCPClientSpec pre-registers an MCP client with one OAuthProvider's server.
//
// +kubebuilder:validation:XValidation:rule="!has(self.introspectUpstream) || !self.introspectUpstream || (has(self.tokenEndpointAuthMethod) && self.tokenEndpointAuthMethod != 'none')",message="introspectUpstream needs a confidential client (tokenEndpointAuthMethod client_secret_basic or client_secret_post)",fieldPath=".introspectUpstream"
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || size(self.resources) == 0 || (has(self.tokenEndpointAuthMethod) && self.tokenEndpointAuthMethod != 'none')",message="resources need a confidential client (tokenEndpointAuthMethod client_secret_basic or client_secret_post): only an authenticated MCP server may exchange tokens",fieldPath=".resources"
// +kubebuilder:validation:XValidation:rule="!has(self.grantTypes) || self.grantTypes.exists(g, g != 'refresh_token')",message="grantTypes must include authorization_code, client_credentials or urn:ietf:params:oauth:grant-type:device_code: refresh_token alone obtains no first token",fieldPath=".grantTypes"
// +kubebuilder:validation:XValidation:rule="!has(self.grantTypes) || !('client_credentials' in self.grantTypes) || (has(self.tokenEndpointAuthMethod) && self.tokenEndpointAuthMethod != 'none')",message="client_credentials needs a confidential client (tokenEndpointAuthMethod client_secret_basic or client_secret_post)",fieldPath=".grantTypes"
// +kubebuilder:validation:XValidation:rule="has(self.approveClientID) || (has(self.redirectURIs) && size(self.redirectURIs) > 0) || (has(self.grantTypes) && !('authorization_code' in self.grantTypes))",message="redirectURIs are required with the authorization_code grant (unless approveClientID is set)",fieldPath=".redirectURIs"
// +kubebuilder:validation:XValidation:rule="!has(self.approveClientID) || !has(self.redirectURIs) || size(self.redirectURIs) == 0",message="set redirectURIs to register a client, or approveClientID to approve an existing dynamic or metadata-document client; not both"
// +kubebuilder:validation:XValidation:rule="!has(self.approveClientID) || (!has(self.scopes) && !has(self.secretName) && !has(self.resources) && (!has(self.trusted) || !self.trusted) && (!has(self.introspectUpstream) || !self.introspectUpstream) && (!has(self.tokenEndpointAuthMethod) || self.tokenEndpointAuthMethod == 'none'))",message="approveClientID only approves a client that registered itself: scopes, secretName, resources, trusted, introspectUpstream and a client secret belong to clients the operator registers",fieldPath=".approveClientID"
type MCPClientSpec struct {
	// ProviderRef names the OAuthProvider, in this namespace, whose server the client
	// logs in through.
	ProviderRef LocalObjectReference `json:"providerRef"`

	// ClientName is shown to users on the consent page. Defaults to the object's name.
	// +optional
	// +kubebuilder:validation:MaxLength=100
	ClientName string `json:"clientName,omitempty"`

	// RedirectURIs the client may use, compared exactly (loopback http URIs match
	// any port, RFC 8252 §7.3): https, http on a loopback host, or a private-use
	// scheme such as com.example.app:/callback. No fragments or wildcards. Required
	// with the authorization_code grant; agents using only client_credentials or the
	// device flow have none.
	// Not with approveClientID.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.all(u, !u.contains('#') && !u.contains('*') && isURL(u) && (url(u).getScheme() == 'https' || (url(u).getScheme() == 'http' && url(u).getHostname() in ['localhost', '127.0.0.1', '::1']) || u.matches('^[a-z][a-z0-9+-]*(\\\\.[a-z0-9+-]+)+:/')))",message="each redirect URI must be https, http on a loopback host, or a private-use scheme (com.example.app:/cb), without fragment or wildcard"
	// +listType=set
	RedirectURIs []string `json:"redirectURIs,omitempty"`

	// ApproveClientID names a client that registered itself, a dynamic
	// registration's client_id or a Client ID Metadata Document's https URL, and
	// approves it for the provider's approval mode (clientPolicy.requireApproval)
	// instead of registering a new client: no credentials Secret is written. Not
	// with redirectURIs. `mcpauth admin deny` still overrides it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2000
	// +kubebuilder:validation:Pattern=`^[!-~]+$`
	ApproveClientID string `json:"approveClientID,omitempty"`

	// TokenEndpointAuthMethod: none for public clients (desktop apps, IDEs), or a
	// client secret (the operator generates one into the credentials Secret).
	// +optional
	// +kubebuilder:default=none
	TokenEndpointAuthMethod TokenEndpointAuthMethod `json:"tokenEndpointAuthMethod,omitempty"`

	// Scopes the client may be granted; empty means the server's scopesSupported.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	Scopes []string `json:"scopes,omitempty"`

	// GrantTypes the client may use: authorization_code and refresh_token (the
	// default), client_credentials (a confidential client acting for itself: its
	// tokens name no user, sub is its client ID, no refresh token) and
	// urn:ietf:params:oauth:grant-type:device_code (RFC 8628, command-line clients
	// without a browser; public clients allowed). See docs/agents.md.
	// +optional
	// +kubebuilder:default={authorization_code,refresh_token}
	// +kubebuilder:validation:MaxItems=4
	// +listType=set
	GrantTypes []GrantType `json:"grantTypes,omitempty"`

	// SecretName of the Secret the operator writes the credentials to (client ID,
	// secret, issuer and metadata URLs). Defaults to <name>-credentials.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName,omitempty"`

	// Trusted clients skip the consent page. Only mark clients you control.
	// +optional
	Trusted bool `json:"trusted,omitempty"`

	// IntrospectUpstream marks the client of an MCP server: when it introspects a
	// user's access token it also receives that user's upstream access token, so its
	// tools can call the upstream API for the user. Confidential clients only; only
	// for MCP servers you run.
	// +optional
	IntrospectUpstream bool `json:"introspectUpstream,omitempty"`

	// Resources marks the client of an MCP server too: the RFC 8707 resource URIs the
	// server serves (its own URL, as MCP clients name it in the resource parameter).
	// The server may then exchange (RFC 8693 token exchange) a user's access token
	// bound to one of them for the user's upstream access token; no other caller may.
	// Absolute URIs without a fragment. Confidential clients only.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=2000
	// +kubebuilder:validation:XValidation:rule="self.all(u, !u.contains('#') && isURL(u) && url(u).getHostname() != '' && (url(u).getScheme() == 'https' || url(u).getScheme() == 'http'))",message="each resource must be an absolute http(s) URI with a host and without a fragment (RFC 8707)"
	// +listType=set
	Resources []string `json:"resources,omitempty"`
}

// MCPClientStatus is what the operator observed.
type MCPClientStatus struct {
	// ClientID assigned to the client; stable for the life of the object.
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// SecretName of the credentials Secret.
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// Conditions: Ready (the summary) and Registered.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// MCPClient is an MCP client (a desktop app, an IDE, an agent) registered with an
// OAuthProvider's authorization server, its credentials written to a Secret.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mcpc,categories=mcpauth
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.providerRef.name`
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.status.clientID`
// +kubebuilder:printcolumn:name="Auth",type=string,JSONPath=`.spec.tokenEndpointAuthMethod`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MCPClient struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MCPClientSpec   `json:"spec"`
	Status MCPClientStatus `json:"status,omitempty"`
}

// MCPClientList is a list of MCPClients.
//
// +kubebuilder:object:root=true
type MCPClientList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MCPClient `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MCPClient{}, &MCPClientList{})
}

package v1alpha1

// ClientPolicySpec says which clients may ask an OAuthProvider's server for a login.
// Empty: every client the server's other settings allow. Dynamic registration itself
// is switched by spec.server.dynamicClientRegistration.
type ClientPolicySpec struct {
	// MetadataDocumentDomains are the hosts whose Client ID Metadata Documents are
	// accepted: "example.com" (that host) or "*.example.com" (its subdomains). A
	// client ID on any other host is refused before its document is fetched. Empty:
	// any host.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$`
	// +listType=set
	MetadataDocumentDomains []string `json:"metadataDocumentDomains,omitempty"`

	// RedirectURIPatterns restrict the redirect URIs dynamic registrations may
	// register and metadata documents may list: "*" may be the host's first label
	// (https://*.example.com/cb), the port (http://localhost:*/cb) or end the
	// pattern (http://127.0.0.1/*, cursor://*). Empty: any valid redirect URI.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=2048
	// +listType=set
	RedirectURIPatterns []string `json:"redirectURIPatterns,omitempty"`

	// MaxScopes is the most scope a client of each kind may get; each list within
	// server.scopesSupported. A request for more is narrowed (the token response
	// names the scope issued), and refused with invalid_scope when nothing is left.
	// +optional
	MaxScopes MaxScopesSpec `json:"maxScopes,omitzero"`

	// RequireApproval holds every new dynamic and metadata-document client until an
	// administrator approves it (`mcpauth admin approve`, or an MCPClient with
	// spec.approveClientID); until then its users see a waiting page.
	// +optional
	RequireApproval bool `json:"requireApproval,omitempty"`
}

// MaxScopesSpec bounds the scope of each kind of client. An empty list is no bound
// beyond server.scopesSupported.
type MaxScopesSpec struct {
	// PreRegistered bounds MCPClients.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	PreRegistered []string `json:"preRegistered,omitempty"`
	// Dynamic bounds dynamically registered clients; a registration asking for more
	// is registered with its scope narrowed.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	Dynamic []string `json:"dynamic,omitempty"`
	// MetadataDocument bounds clients identified by a metadata document URL.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	MetadataDocument []string `json:"metadataDocument,omitempty"`
}

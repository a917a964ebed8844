package v1alpha1

// AccessSpec says who may log in through the provider and which scopes membership
// grants. Without allow rules, everyone the upstream provider authenticates may log
// in; with them, a user must match at least one. The rules are checked at every
// login, after the upstream login and before anything is issued.
type AccessSpec struct {
	// Allow are the login rules: a user matching any entry of any list may log in.
	// +optional
	Allow AccessRules `json:"allow,omitzero"`

	// GroupsClaim is the ID-token or user-info claim holding the user's groups, a
	// dotted path for nested claims (realm_access.roles). Default "groups".
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[^.\s]+(\.[^.\s]+)*$`
	GroupsClaim string `json:"groupsClaim,omitempty"`

	// ScopeMappings grant scopes to the users their members rules match. A scope a
	// mapping names is granted only to its members, and only when the client asks for
	// it (or, asking for nothing, gets it as a default).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	ScopeMappings []ScopeMapping `json:"scopeMappings,omitempty"`
}

// AccessRules match users; a user matches when any entry of any list does.
type AccessRules struct {
	// Users are upstream user IDs (GitHub's numeric id, OIDC's sub) and, for GitHub,
	// logins (prefer IDs: a login can be renamed and taken).
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^\S+$`
	// +listType=set
	Users []string `json:"users,omitempty"`

	// Emails are addresses the upstream has verified, compared without case.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=254
	// +kubebuilder:validation:items:Pattern=`^[^@\s]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`
	// +listType=set
	Emails []string `json:"emails,omitempty"`

	// EmailDomains match verified addresses in exactly these domains (not
	// subdomains).
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`
	// +listType=set
	EmailDomains []string `json:"emailDomains,omitempty"`

	// GitHubOrganizations are organization logins (type github; needs the upstream
	// scope read:org, which the operator asks for unless spec.scopes is set).
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=39
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9](-?[A-Za-z0-9])*$`
	// +listType=set
	GitHubOrganizations []string `json:"githubOrganizations,omitempty"`

	// GitHubTeams are teams written organization/team-slug (type github).
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=140
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9](-?[A-Za-z0-9])*/[A-Za-z0-9][A-Za-z0-9_.-]*$`
	// +listType=set
	GitHubTeams []string `json:"githubTeams,omitempty"`

	// GoogleHostedDomains are Google Workspace domains, matched against the hd claim
	// of the signed ID token (type google or oidc).
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`
	// +listType=set
	GoogleHostedDomains []string `json:"googleHostedDomains,omitempty"`

	// Groups are values of the groups claim (type oidc or oauth2).
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	Groups []string `json:"groups,omitempty"`
}

// ScopeMapping grants scopes to the users its members rules match.
type ScopeMapping struct {
	// Scopes granted; each must be in server.scopesSupported.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=set
	Scopes []string `json:"scopes"`

	// Members are the users granted the scopes.
	// +kubebuilder:validation:XValidation:rule="has(self.users) || has(self.emails) || has(self.emailDomains) || has(self.githubOrganizations) || has(self.githubTeams) || has(self.googleHostedDomains) || has(self.groups)",message="members needs at least one rule"
	Members AccessRules `json:"members"`
}

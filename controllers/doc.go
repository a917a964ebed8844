// Package controllers holds the reconcilers of the mcpauth operator: OAuthProvider into
// the objects that run its authorization server, MCPClient into a registration that
// server honours and a Secret with the client's credentials.
//
// The operator renders the server's configuration (authserver/config) and never
// touches tokens: it imports neither the token store nor the HTTP handlers.
package controllers

// The operator's permissions, rendered into config/rbac/role.yaml by controller-gen.
// Secrets are read for references and written for what the operator owns (credentials,
// encryption keys, the server's config); the server itself gets a narrower Role.
//
// +kubebuilder:rbac:groups=oauth.mcpauth.dev,resources=oauthproviders;mcpclients,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=oauth.mcpauth.dev,resources=oauthproviders/status;mcpclients/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=oauth.mcpauth.dev,resources=oauthproviders/finalizers;mcpclients/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets;configmaps;services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

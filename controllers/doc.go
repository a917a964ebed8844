// Package controllers holds the reconcilers of the mcpauth operator: OAuthProvider into
// the objects that run its authorization server, MCPClient into a registration that
// server honours and a Secret with the client's credentials.
//
// The operator renders the server's configuration (authserver/config) and never
// touches tokens: it imports neither the token store nor the HTTP handlers.
//
// # What an OAuthProvider X renders
//
// Every object is in X's namespace, controlled by X (owner reference, so deleting X
// deletes them), and labelled app.kubernetes.io/instance=X.
//
//	ServiceAccount      X-authserver          the server's identity
//	Role, RoleBinding   X-authserver          get, list, watch on Secret X-authserver-clients only
//	ConfigMap           X-authserver-config   config.yaml, the server's config (no secret values)
//	Secret              X-authserver-keys     encryption-key: base64 of 32 random bytes, made once
//	Secret              X-authserver-clients  clients.yaml: the registry of X's MCPClients
//	Deployment          X-authserver          the server; /authserver --config /etc/mcpauth/config/config.yaml
//	Service             X-authserver          port 80 (443 with server.tls) to the pod's port 8080
//	PodDisruptionBudget X-authserver          only while replicas > 1
//
// The Deployment mounts, each as a directory (so the kubelet updates rotated Secrets):
//
//	/etc/mcpauth/config/config.yaml         ConfigMap X-authserver-config
//	/etc/mcpauth/keys/encryption-key        Secret X-authserver-keys
//	/etc/mcpauth/upstream/client-secret     spec.clientSecretRef, by reference (never copied)
//	/etc/mcpauth/redis/password             spec.tokenStore.redis.passwordSecretRef
//	/etc/mcpauth/redis-ca/ca.crt            spec.tokenStore.redis.tls.caSecretRef
//	/etc/mcpauth/tls/tls.crt, tls.key       spec.server.tls.secretName
//
// and sets POD_NAMESPACE. The config's clientsSecret names X-authserver-clients, which
// the server watches through the API (authserver/kubeclients), so a new MCPClient
// works within seconds and without a restart. The pod template's annotation
// oauth.mcpauth.dev/inputs-hash hashes the config and every mounted Secret value
// (not the registry), so a change to either rolls the pods.
//
// # What an MCPClient C renders
//
//	Secret  spec.secretName, else C-credentials  client-id, client-secret (confidential
//	        clients only), issuer-url, metadata-url; controlled by C
//
// The client ID (mcp_ and 22 random characters) is generated once and kept in
// status.clientID. The registry entry is written by the OAuthProvider reconciler, its
// only writer, with the secret's SHA-256 (config.HashClientSecret), never the secret.
//
// # Steady state
//
// A pass over unchanged objects writes nothing: children are written only when a
// field the operator sets differs (see apply.go), and status only when it changed.
package controllers

// The operator's permissions, rendered into config/rbac/role.yaml by controller-gen.
// Secrets are read for references and written for what the operator owns (credentials,
// encryption keys, the registry). The operator creates a Role granting the server
// get, list and watch on one Secret; Kubernetes lets it do so without the escalate verb
// only because it holds those verbs on Secrets itself.
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

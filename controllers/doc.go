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
//	ServiceAccount      X-authserver               the server's identity
//	Role, RoleBinding   X-authserver               get, list, watch on Secret X-authserver-clients only
//	ConfigMap           X-authserver-config        config.yaml, the server's config (no secret values)
//	Secret              X-authserver-keys          encryption-key: base64 of 32 random bytes, made once
//	Secret              X-authserver-signing-keys  signing-keys.json: the JWT signing keys (config.SigningKeySet), rotated
//	Secret              X-authserver-admin         admin-token: base64url of 32 random bytes, made once
//	Secret              X-authserver-clients       clients.yaml: the registry of X's MCPClients
//	                                               (their entries, and the approvals of approveClientID)
//	Deployment          X-authserver               the server; /authserver --config /etc/mcpauth/config/config.yaml
//	Service             X-authserver               port 80 (443 with server.tls) to the pod's port 8080
//	PodDisruptionBudget X-authserver               only while replicas > 1
//
// The Deployment mounts, each as a directory (so the kubelet updates rotated Secrets):
//
//	/etc/mcpauth/config/config.yaml               ConfigMap X-authserver-config
//	/etc/mcpauth/keys/encryption-key              Secret X-authserver-keys
//	/etc/mcpauth/signing-keys/signing-keys.json   Secret X-authserver-signing-keys (secrets.signingKeysFile)
//	/etc/mcpauth/admin/admin-token                Secret X-authserver-admin (secrets.adminTokenFile)
//	/etc/mcpauth/upstream/client-secret           spec.clientSecretRef, by reference (never copied)
//	/etc/mcpauth/redis/password                   spec.tokenStore.redis.passwordSecretRef
//	/etc/mcpauth/redis-ca/ca.crt                  spec.tokenStore.redis.tls.caSecretRef
//	/etc/mcpauth/tls/tls.crt, tls.key             spec.server.tls.secretName
//
// and sets POD_NAMESPACE. The config's clientsSecret names X-authserver-clients, which
// the server watches through the API (authserver/kubeclients), so a new MCPClient
// works within seconds and without a restart. The pod template's annotation
// oauth.mcpauth.dev/inputs-hash hashes the config and every mounted Secret value but
// the registry and the signing keys, which the server follows live, so a change to
// any other rolls the pods.
//
// The config also carries spec.server.accessTokenFormat (tokens.accessTokenFormat),
// spec.server.refreshReuseWindow (tokens.refreshReuseWindow) and
// spec.server.registration (dynamicRegistration.idleTTL and maxPerSource).
//
// # Counting dynamic registrations
//
// status.dynamicClients is how many RFC 7591 registrations the server holds. They live
// in the token store, which the operator never reads, so the operator asks the server:
// GET /admin/clients/count on its Service, with the admin token of Secret
// X-authserver-admin, which the operator made and already holds (AdminAPICounter; the
// wire types come from authserver/adminapi, which imports nothing of the server). The
// alternatives were worse: the server writing its count into the API would need write
// RBAC on an object for a pod that now only reads one Secret, and reading /metrics
// would tie status to a text format and to the metrics listener's address. The count
// is read only from a ready server, at most every 5 minutes between other reconciles
// and within 3 s; over TLS the server's certificate is verified for the issuer's host,
// and one that cannot be verified (a private CA) leaves the count unknown rather than
// send the token to an unchecked peer. Unknown is absent from status, never a
// condition: the server's health is what Ready reports. envtest has no server, so
// there the field stays absent.
//
// # Signing keys
//
// X-authserver-signing-keys starts with one key of spec.server.signingKeyAlgorithm
// (ES256: ECDSA P-256; RS256: RSA 2048), PKCS #8 PEM, random kid, signing at once.
// Then, with TTL the access-token lifetime:
//
//	every signingKeyRotation   a successor is added with activateAt = now + TTL, so every
//	                           verifier caching the JWKS has it before its first token
//	the key it replaces        gets publishUntil = successor's activateAt + TTL + 1m: it
//	                           stays in the JWKS until the last token it signed expired
//	at publishUntil            the key is removed from the file
//	annotation                 each new value of oauth.mcpauth.dev/rotate-signing-key adds
//	                           a key with activateAt = now + 1m (a suspected leak): it is
//	                           published at once and signs once the kubelet can have
//	                           brought the Secret to every replica (requestedRotationSlack),
//	                           so no replica signs with a key another does not publish yet;
//	                           the value is recorded on the Secret and in status, so it
//	                           acts once
//	a new signingKeyAlgorithm  a successor of that algorithm, activateAt = now + TTL
//
// The schedule is read from the keys themselves (the newest activateAt plus the
// period), so an operator restart loses nothing; a successor that has not signed yet
// is replaced when another rotation is due before it activates. The reconciler asks
// to run again at the next activation, retirement or rotation. status.signingKeys
// shows the active kid, the next rotation, the published kids and the last request
// handled; no key material leaves the Secret. Events: SigningKeyGenerated, SigningKeyRotated,
// SigningKeyRetired; Warnings SigningKeysInvalid when a file the server could not
// read is replaced, and SigningKeysLost when the Secret vanished (tokens the lost
// keys signed no longer verify).
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
// An MCPClient with spec.approveClientID renders nothing: it approves a dynamic or
// metadata-document client for the provider's approval mode, and the OAuthProvider
// reconciler lists it under approvals in the same registry (mcpclient_approval.go).
// Its status.clientID is the approved ID; Registered says Approved once listed.
//
// # Steady state
//
// A pass over unchanged objects writes nothing: children are written only when a
// field the operator sets differs (see apply.go), and status only when it changed.
package controllers

// The operator's permissions, rendered into config/rbac/role.yaml by controller-gen.
// Secrets are read for references and written for what the operator owns (credentials,
// encryption and signing keys, the admin token, the registry). The operator creates a Role granting the server
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

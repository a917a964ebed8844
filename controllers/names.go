package controllers

import (
	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

// Object names, keys and paths the reconcilers render. They are part of the contract
// with users (who look for the objects) and with the authorization server (which reads
// the files where the Deployment mounts them); doc.go lists them.
const (
	// serverSuffix names the ServiceAccount, Role, RoleBinding, Deployment, Service and
	// PodDisruptionBudget of an OAuthProvider: <provider>-authserver.
	serverSuffix = "-authserver"
	// configSuffix names the ConfigMap with the server's config.yaml.
	configSuffix = "-authserver-config"
	// keysSuffix names the Secret with the generated encryption key.
	keysSuffix = "-authserver-keys"
	// signingKeysSuffix names the Secret with the keys that sign JWT access tokens.
	signingKeysSuffix = "-authserver-signing-keys"
	// adminSuffix names the Secret with the admin API's bearer token.
	adminSuffix = "-authserver-admin"
	// registrySuffix names the Secret listing the MCPClients of a provider.
	registrySuffix = "-authserver-clients"
	// credentialsSuffix names an MCPClient's credentials Secret unless it names one.
	credentialsSuffix = "-credentials"

	// configKey is the config file's key in the ConfigMap.
	configKey = "config.yaml"
	// encryptionKeyKey holds base64 of 32 random bytes in the keys Secret.
	encryptionKeyKey = "encryption-key"
	// registryKey holds the clients file in the registry Secret.
	registryKey = "clients.yaml"
	// signingKeysKey holds the signing keys file (config.SigningKeySet).
	signingKeysKey = "signing-keys.json"
	// adminTokenKey holds base64url of 32 random bytes in the admin Secret.
	adminTokenKey = "admin-token"

	// Keys of an MCPClient's credentials Secret.
	credClientID     = "client-id"
	credClientSecret = "client-secret"
	credIssuerURL    = "issuer-url"
	credMetadataURL  = "metadata-url"

	// Where the server's container finds its files. Each directory is one volume, so
	// a rotated Secret is updated in place by the kubelet (no subPath mounts).
	configDir        = "/etc/mcpauth/config"
	keysDir          = "/etc/mcpauth/keys"
	signingKeysDir   = "/etc/mcpauth/signing-keys"
	adminDir         = "/etc/mcpauth/admin"
	upstreamDir      = "/etc/mcpauth/upstream"
	redisDir         = "/etc/mcpauth/redis"
	redisCADir       = "/etc/mcpauth/redis-ca"
	tlsDir           = "/etc/mcpauth/tls"
	configPath       = configDir + "/" + configKey
	upstreamFile     = "client-secret"
	redisPassFile    = "password"
	redisCAFile      = "ca.crt"
	serverBinaryPath = "/authserver"

	// serverPort is where the server listens in its pod; the Service maps 80 (or 443
	// with TLS) to it.
	serverPort = 8080
	// serverUID is the distroless "nonroot" user, set explicitly so runAsNonRoot can
	// be checked whatever USER an image declares.
	serverUID int64 = 65532

	// inputsHashAnnotation on the pod template is a SHA-256 of the rendered config and
	// of every Secret value mounted into the pod: when one changes, the pods roll.
	inputsHashAnnotation = "oauth.mcpauth.dev/inputs-hash"
	// rotationHandledAnnotation on the signing keys Secret is the last value of the
	// provider's rotate-signing-key annotation acted on. It is written with the key it
	// caused, so a failed status patch cannot make one request rotate twice.
	rotationHandledAnnotation = "oauth.mcpauth.dev/rotation-request"
	// specHashAnnotation on a rendered object is a hash of the spec the operator last
	// wrote, so it notices a field it removed (see needsSpecUpdate).
	specHashAnnotation = "oauth.mcpauth.dev/spec-hash"

	managerName = "mcpauth-operator"
)

// Label keys on every object the operator renders for a provider.
const (
	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelComponent = "app.kubernetes.io/component"
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelProvider  = "oauth.mcpauth.dev/provider"
)

func serverName(p *oauthv1alpha1.OAuthProvider) string     { return p.Name + serverSuffix }
func configMapName(p *oauthv1alpha1.OAuthProvider) string  { return p.Name + configSuffix }
func keysSecretName(p *oauthv1alpha1.OAuthProvider) string { return p.Name + keysSuffix }

// signingKeysSecretName holds the JWT signing keys, adminSecretName the admin token.
func signingKeysSecretName(p *oauthv1alpha1.OAuthProvider) string { return p.Name + signingKeysSuffix }
func adminSecretName(p *oauthv1alpha1.OAuthProvider) string       { return p.Name + adminSuffix }

// registrySecretName is the registry Secret of the provider named provider.
func registrySecretName(provider string) string { return provider + registrySuffix }

// credentialsSecretName is where an MCPClient's credentials go.
func credentialsSecretName(c *oauthv1alpha1.MCPClient) string {
	if c.Spec.SecretName != "" {
		return c.Spec.SecretName
	}
	return c.Name + credentialsSuffix
}

// selectorLabels select a provider's server pods; they never change, because a
// Deployment's selector is immutable.
func selectorLabels(p *oauthv1alpha1.OAuthProvider) map[string]string {
	return map[string]string{labelName: "mcpauth-authserver", labelInstance: p.Name}
}

// providerLabels go on every object rendered for p.
func providerLabels(p *oauthv1alpha1.OAuthProvider) map[string]string {
	l := selectorLabels(p)
	l[labelComponent] = "authorization-server"
	l[labelManagedBy] = managerName
	l[labelProvider] = p.Name
	return l
}

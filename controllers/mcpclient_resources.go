package controllers

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// Pure functions shared by both reconcilers: what an MCPClient's credentials Secret
// holds, and the registry entry the provider writes for it. The MCPClient reconciler
// computes the same entry to tell whether its registration has reached the registry.

// clientIDPrefix marks IDs the operator generated; it is not a URL, as the server
// requires of pre-registered IDs.
const clientIDPrefix = "mcp_"

// newClientID returns a fresh client ID: the prefix and 16 random bytes, base64url.
func newClientID() (string, error) {
	b, err := randomToken(16)
	if err != nil {
		return "", fmt.Errorf("generate client ID: %w", err)
	}
	return clientIDPrefix + b, nil
}

// newClientSecret returns 32 random bytes, base64url: the entropy the server needs to
// store only an unsalted hash of it.
func newClientSecret() (string, error) {
	s, err := randomToken(32)
	if err != nil {
		return "", fmt.Errorf("generate client secret: %w", err)
	}
	return s, nil
}

func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// confidential reports whether c authenticates with a secret.
func confidential(c *oauthv1alpha1.MCPClient) bool {
	m := c.Spec.TokenEndpointAuthMethod
	return m != "" && m != oauthv1alpha1.AuthMethodNone
}

// metadataURL is where a client finds the server's RFC 8414 metadata, given the
// issuer the server publishes.
func metadataURL(issuer string) string {
	return issuer + config.PathAuthorizationServerMetadata
}

// buildCredentialsSecret is c's credentials Secret. secret is empty for public clients,
// and then the Secret has no client-secret key.
func buildCredentialsSecret(c *oauthv1alpha1.MCPClient, issuer, clientID, secret string) *corev1.Secret {
	data := map[string][]byte{
		credClientID:    []byte(clientID),
		credIssuerURL:   []byte(issuer),
		credMetadataURL: []byte(metadataURL(issuer)),
	}
	if secret != "" {
		data[credClientSecret] = []byte(secret)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      credentialsSecretName(c),
			Namespace: c.Namespace,
			Labels: map[string]string{
				labelName:      "mcpauth-client-credentials",
				labelInstance:  c.Name,
				labelManagedBy: managerName,
				labelProvider:  c.Spec.ProviderRef.Name,
			},
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
}

// errCredentialsIncomplete: the credentials Secret lacks what the entry needs; the
// MCPClient reconciler has yet to write it.
var errCredentialsIncomplete = errors.New("credentials Secret is not written yet")

// registryEntry is c's entry in its provider's registry, from its spec and its
// credentials Secret, checked as the server will check it against cfg (the provider's
// rendered config). The registry holds only the secret's hash.
func registryEntry(cfg *config.Config, c *oauthv1alpha1.MCPClient, creds *corev1.Secret) (config.Client, error) {
	id := string(creds.Data[credClientID])
	if id == "" {
		return config.Client{}, errCredentialsIncomplete
	}
	entry := config.Client{
		ClientID:                id,
		ClientName:              c.Spec.ClientName,
		RedirectURIs:            slices.Clone(c.Spec.RedirectURIs),
		TokenEndpointAuthMethod: string(c.Spec.TokenEndpointAuthMethod),
		Scopes:                  slices.Clone(c.Spec.Scopes),
		Trusted:                 c.Spec.Trusted,
		IntrospectUpstream:      c.Spec.IntrospectUpstream,
		Resources:               slices.Clone(c.Spec.Resources),
	}
	if entry.ClientName == "" {
		entry.ClientName = c.Name
	}
	if entry.TokenEndpointAuthMethod == "" {
		entry.TokenEndpointAuthMethod = config.AuthMethodNone
	}
	for _, g := range c.Spec.GrantTypes {
		entry.GrantTypes = append(entry.GrantTypes, string(g))
	}
	if len(entry.GrantTypes) == 0 {
		entry.GrantTypes = []string{config.GrantAuthorizationCode, config.GrantRefreshToken}
	}
	if confidential(c) {
		secret := string(creds.Data[credClientSecret])
		if secret == "" {
			return config.Client{}, errCredentialsIncomplete
		}
		entry.SecretHash = config.HashClientSecret(secret)
	}
	if err := validateEntry(cfg, entry); err != nil {
		return config.Client{}, err
	}
	return entry, nil
}

// validateEntry checks one entry the way the server checks its registry: on its own
// (through the clients-file parser) and against the server's scopes. An entry that
// would fail there must not reach the registry, where it could spoil the others.
func validateEntry(cfg *config.Config, entry config.Client) error {
	data, err := config.MarshalClients([]config.Client{entry})
	if err != nil {
		return err
	}
	if _, err := config.ParseClients(data); err != nil {
		return fieldErrors(err, clientSpecPath)
	}
	// The server would answer unsupported_grant_type: say so here, where it can be fixed.
	if slices.Contains(entry.GrantTypes, config.GrantDeviceCode) && !cfg.DeviceAuthorization.Enabled {
		return fmt.Errorf("spec.grantTypes: %s needs the OAuthProvider's spec.server.deviceFlow.enabled", config.GrantDeviceCode)
	}
	return fieldErrors(cfg.ValidateClients([]config.Client{entry}), clientSpecPath)
}

// clientSpecPath turns a registry path ("clients[0].redirectURIs[1]") into the
// MCPClient field it came from ("spec.redirectURIs[1]").
func clientSpecPath(field string) string {
	if _, rest, ok := strings.Cut(field, "."); ok {
		return "spec." + rest
	}
	return "spec"
}

package controllers

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

func TestClientConditions(t *testing.T) {
	readyProvider := &metav1.Condition{Type: oauthv1alpha1.ConditionReady, Status: metav1.ConditionTrue}
	startingProvider := &metav1.Condition{Type: oauthv1alpha1.ConditionReady, Status: metav1.ConditionFalse, Message: "0 of 1 replicas available"}
	tests := []struct {
		name              string
		obs               clientObservation
		registered, ready want
	}{
		{
			name:       "no provider yet",
			obs:        clientObservation{providerName: "github"},
			registered: want{metav1.ConditionFalse, oauthv1alpha1.ReasonProviderNotFound, "OAuthProvider github not found"},
			ready:      want{metav1.ConditionFalse, oauthv1alpha1.ReasonProviderNotFound, "OAuthProvider github not found"},
		},
		{
			name:       "written but not yet in the registry",
			obs:        clientObservation{providerName: "github", providerFound: true, providerReady: readyProvider, clientID: "mcp_x"},
			registered: want{metav1.ConditionFalse, oauthv1alpha1.ReasonRegistrationPending, "waiting for OAuthProvider github"},
			ready:      want{metav1.ConditionFalse, oauthv1alpha1.ReasonRegistrationPending, ""},
		},
		{
			name:       "registered with a server that is starting",
			obs:        clientObservation{providerName: "github", providerFound: true, providerReady: startingProvider, registered: true, clientID: "mcp_x"},
			registered: want{metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered, "as client mcp_x"},
			ready:      want{metav1.ConditionFalse, oauthv1alpha1.ReasonProviderNotReady, "0 of 1 replicas available"},
		},
		{
			name:       "registered with a provider that has not reported",
			obs:        clientObservation{providerName: "github", providerFound: true, registered: true, clientID: "mcp_x"},
			registered: want{metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered, ""},
			ready:      want{metav1.ConditionFalse, oauthv1alpha1.ReasonProviderNotReady, "OAuthProvider github is not ready"},
		},
		{
			name:       "registered with a Ready server",
			obs:        clientObservation{providerName: "github", providerFound: true, providerReady: readyProvider, registered: true, clientID: "mcp_x"},
			registered: want{metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered, ""},
			ready:      want{metav1.ConditionTrue, oauthv1alpha1.ReasonReady, "mcp_x can log in"},
		},
		{
			name:       "an approval not yet in the registry",
			obs:        clientObservation{providerName: "github", providerFound: true, providerReady: readyProvider, clientID: "https://t.example/c.json", approval: true},
			registered: want{metav1.ConditionFalse, oauthv1alpha1.ReasonApprovalPending, "approval of client https://t.example/c.json"},
			ready:      want{metav1.ConditionFalse, oauthv1alpha1.ReasonApprovalPending, ""},
		},
		{
			name:       "an approval listed with a Ready server",
			obs:        clientObservation{providerName: "github", providerFound: true, providerReady: readyProvider, registered: true, clientID: "https://t.example/c.json", approval: true},
			registered: want{metav1.ConditionTrue, oauthv1alpha1.ReasonApproved, "lists client https://t.example/c.json as approved"},
			ready:      want{metav1.ConditionTrue, oauthv1alpha1.ReasonReady, ""},
		},
		{
			name: "a scope the server does not offer",
			obs: clientObservation{providerName: "github", providerFound: true, providerReady: readyProvider,
				problem: &blocker{oauthv1alpha1.ReasonInvalidSpec, `spec.scopes[0]: "admin" is not in scopesSupported`}},
			registered: want{metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidSpec, "spec.scopes[0]"},
			ready:      want{metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidSpec, "spec.scopes[0]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectCondition(t, registeredCondition(tt.obs), tt.registered)
			expectCondition(t, clientReadyCondition(tt.obs), tt.ready)
		})
	}
}

func mcpClient(method oauthv1alpha1.TokenEndpointAuthMethod) *oauthv1alpha1.MCPClient {
	return &oauthv1alpha1.MCPClient{
		ObjectMeta: metav1.ObjectMeta{Name: "ide", Namespace: "team-a"},
		Spec: oauthv1alpha1.MCPClientSpec{
			ProviderRef:             oauthv1alpha1.LocalObjectReference{Name: "github"},
			RedirectURIs:            []string{"http://127.0.0.1/callback"},
			TokenEndpointAuthMethod: method,
			GrantTypes:              []oauthv1alpha1.GrantType{oauthv1alpha1.GrantAuthorizationCode, oauthv1alpha1.GrantRefreshToken},
		},
	}
}

func TestRegistryEntry(t *testing.T) {
	cfg, err := renderConfig(provider())
	if err != nil {
		t.Fatal(err)
	}
	creds := func(c *oauthv1alpha1.MCPClient, secret string) *corev1.Secret {
		return buildCredentialsSecret(c, cfg.Issuer, "mcp_abc", secret)
	}
	t.Run("a public client has no secret hash and defaults its name", func(t *testing.T) {
		g := NewWithT(t)
		c := mcpClient(oauthv1alpha1.AuthMethodNone)
		e, err := registryEntry(cfg, c, creds(c, ""))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e).To(Equal(config.Client{
			ClientID: "mcp_abc", ClientName: "ide", RedirectURIs: []string{"http://127.0.0.1/callback"},
			TokenEndpointAuthMethod: "none", GrantTypes: []string{"authorization_code", "refresh_token"},
		}))
	})
	t.Run("a confidential client carries the hash of its secret, never the secret", func(t *testing.T) {
		g := NewWithT(t)
		c := mcpClient(oauthv1alpha1.AuthMethodClientSecretPost)
		c.Spec.Trusted = true
		c.Spec.IntrospectUpstream = true
		c.Spec.Resources = []string{"https://mcp.example.com/mcp"}
		e, err := registryEntry(cfg, c, creds(c, "s3cret"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.SecretHash).To(Equal(config.HashClientSecret("s3cret")))
		g.Expect(e.TokenEndpointAuthMethod).To(Equal("client_secret_post"))
		g.Expect(e.Trusted).To(BeTrue())
		g.Expect(e.IntrospectUpstream).To(BeTrue())
		g.Expect(e.Resources).To(Equal([]string{"https://mcp.example.com/mcp"}))
		data, _ := config.MarshalClients([]config.Client{e})
		g.Expect(string(data)).NotTo(ContainSubstring("s3cret"))
	})
	t.Run("a confidential client without its secret written yet is left out", func(t *testing.T) {
		c := mcpClient(oauthv1alpha1.AuthMethodClientSecretBasic)
		_, err := registryEntry(cfg, c, creds(c, ""))
		NewWithT(t).Expect(err).To(MatchError(errCredentialsIncomplete))
	})
	t.Run("a scope the server does not offer is refused, naming the field", func(t *testing.T) {
		c := mcpClient(oauthv1alpha1.AuthMethodNone)
		c.Spec.Scopes = []string{"admin"}
		_, err := registryEntry(cfg, c, creds(c, ""))
		NewWithT(t).Expect(err).To(MatchError(ContainSubstring(`spec.scopes[0]: "admin" is not in scopesSupported`)))
	})
	t.Run("a client_credentials agent needs no redirect URI", func(t *testing.T) {
		g := NewWithT(t)
		c := mcpClient(oauthv1alpha1.AuthMethodClientSecretBasic)
		c.Spec.RedirectURIs = nil
		c.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantClientCredentials}
		e, err := registryEntry(cfg, c, creds(c, "s3cret"))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(e.GrantTypes).To(Equal([]string{config.GrantClientCredentials}))
	})
	t.Run("the device grant is refused while the provider's device flow is off", func(t *testing.T) {
		g := NewWithT(t)
		c := mcpClient(oauthv1alpha1.AuthMethodNone)
		c.Spec.RedirectURIs = nil
		c.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantDeviceCode, oauthv1alpha1.GrantRefreshToken}
		_, err := registryEntry(cfg, c, creds(c, ""))
		g.Expect(err).To(MatchError(ContainSubstring("spec.server.deviceFlow.enabled")))
		p := provider()
		p.Spec.Server.DeviceFlow = &oauthv1alpha1.DeviceFlowSpec{Enabled: true}
		on, err := renderConfig(p)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = registryEntry(on, c, creds(c, ""))
		g.Expect(err).NotTo(HaveOccurred())
	})
}

func TestCredentials(t *testing.T) {
	public, confidential := mcpClient(oauthv1alpha1.AuthMethodNone), mcpClient(oauthv1alpha1.AuthMethodClientSecretBasic)
	stored := buildCredentialsSecret(confidential, "https://a", "mcp_stored", "stored-secret")
	t.Run("a new public client gets an ID and no secret", func(t *testing.T) {
		g := NewWithT(t)
		id, secret, err := credentials(public, nil, nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(id).To(HavePrefix("mcp_"))
		g.Expect(len(id)).To(Equal(len("mcp_") + 22))
		g.Expect(secret).To(BeEmpty())
	})
	t.Run("a new confidential client gets 32 random bytes as its secret", func(t *testing.T) {
		g := NewWithT(t)
		_, secret, err := credentials(confidential, nil, nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(secret).To(HaveLen(43))
		g.Expect(strings.ContainsAny(secret, "+/=")).To(BeFalse(), "base64url without padding")
	})
	t.Run("the status ID wins over everything", func(t *testing.T) {
		c := confidential.DeepCopy()
		c.Status.ClientID = "mcp_status"
		id, secret, _ := credentials(c, stored, nil)
		NewWithT(t).Expect([]string{id, secret}).To(Equal([]string{"mcp_status", "stored-secret"}))
	})
	t.Run("an existing Secret's credentials are kept when the status was lost", func(t *testing.T) {
		id, secret, _ := credentials(confidential, stored, nil)
		NewWithT(t).Expect([]string{id, secret}).To(Equal([]string{"mcp_stored", "stored-secret"}))
	})
	t.Run("credentials carry over to a renamed Secret", func(t *testing.T) {
		id, secret, _ := credentials(confidential, nil, stored)
		NewWithT(t).Expect([]string{id, secret}).To(Equal([]string{"mcp_stored", "stored-secret"}))
	})
}

func TestCredentialsSecret(t *testing.T) {
	g := NewWithT(t)
	c := mcpClient(oauthv1alpha1.AuthMethodNone)
	s := buildCredentialsSecret(c, "https://auth.example.com", "mcp_x", "")
	g.Expect(s.Name).To(Equal("ide-credentials"))
	g.Expect(s.Data).To(Equal(map[string][]byte{
		"client-id":    []byte("mcp_x"),
		"issuer-url":   []byte("https://auth.example.com"),
		"metadata-url": []byte("https://auth.example.com/.well-known/oauth-authorization-server"),
	}))
	c.Spec.SecretName = "custom"
	g.Expect(buildCredentialsSecret(c, "https://a", "mcp_x", "s").Name).To(Equal("custom"))
	g.Expect(buildCredentialsSecret(c, "https://a", "mcp_x", "s").Data).To(HaveKeyWithValue("client-secret", []byte("s")))
}

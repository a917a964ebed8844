package controllers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/internal/testutil/kubeenv"
)

// newNamespace creates a namespace of its own for one spec, so specs never collide.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

func validProvider(ns string) *oauthv1alpha1.OAuthProvider {
	return &oauthv1alpha1.OAuthProvider{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "provider-", Namespace: ns},
		Spec: oauthv1alpha1.OAuthProviderSpec{
			Type:            oauthv1alpha1.ProviderGitHub,
			ClientID:        "client-id",
			ClientSecretRef: oauthv1alpha1.SecretKeyReference{Name: "github-oauth", Key: "client-secret"},
			Server:          oauthv1alpha1.ServerSpec{URL: "https://auth.example.com"},
		},
	}
}

func validClient(ns string) *oauthv1alpha1.MCPClient {
	return &oauthv1alpha1.MCPClient{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "client-", Namespace: ns},
		Spec: oauthv1alpha1.MCPClientSpec{
			ProviderRef:  oauthv1alpha1.LocalObjectReference{Name: "github"},
			RedirectURIs: []string{"http://127.0.0.1/callback"},
		},
	}
}

// refusal is what the apiserver must say about an invalid object: the field's path
// and a phrase of the reason.
type refusal struct {
	field  string
	phrase string
}

var _ = Describe("The CRDs", func() {
	It("accept every sample in config/samples and fill in the defaults", func() {
		ns := newNamespace()
		files, err := filepath.Glob(filepath.Join(kubeenv.RepoRoot(), "config", "samples", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		applied := 0
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			data, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			for _, doc := range strings.Split(string(data), "\n---\n") {
				obj := &unstructured.Unstructured{}
				Expect(yaml.Unmarshal([]byte(doc), &obj.Object)).To(Succeed(), f)
				obj.SetNamespace(ns)
				Expect(k8sClient.Create(ctx, obj)).To(Succeed(), "sample %s", filepath.Base(f))
				applied++
			}
		}
		Expect(applied).To(BeNumerically(">=", 5))

		var github oauthv1alpha1.OAuthProvider
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "github"}, &github)).To(Succeed())
		Expect(github.Spec.TokenStore.Type).To(Equal(oauthv1alpha1.TokenStoreMemory))
		Expect(github.Spec.Server.CallbackPath).To(Equal("/oauth/callback"))
		Expect(github.Spec.Server.Replicas).To(Equal(ptr.To[int32](1)))
		Expect(github.Spec.Server.DynamicClientRegistration).To(Equal(ptr.To(true)))
		Expect(github.Spec.Server.AllowPKCEPlain).To(BeFalse())
		ttl := github.Spec.Server.TokenTTLs
		Expect([]string{ttl.AuthorizationCode.Duration.String(), ttl.AccessToken.Duration.String(),
			ttl.RefreshToken.Duration.String(), ttl.ClientRegistration.Duration.String(),
			ttl.ExternalToken.Duration.String()}).
			To(Equal([]string{"5m0s", "15m0s", "24h0m0s", "8760h0m0s", "24h0m0s"}))
		srv := github.Spec.Server
		Expect(srv.AccessTokenFormat).To(Equal(oauthv1alpha1.AccessTokenJWT))
		Expect(srv.SigningKeyAlgorithm).To(Equal(oauthv1alpha1.SigningES256))
		Expect(srv.SigningKeyRotation.Duration.String()).To(Equal("720h0m0s"))
		Expect(srv.RefreshReuseWindow).To(Equal(&metav1.Duration{Duration: 30e9}))
		Expect(srv.Registration.IdleTTL).To(Equal(&metav1.Duration{Duration: 720 * 60 * 60e9}))
		Expect(srv.Registration.MaxPerSource).To(Equal(ptr.To[int32](20)))

		var ide oauthv1alpha1.MCPClient
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ide"}, &ide)).To(Succeed())
		Expect(ide.Spec.TokenEndpointAuthMethod).To(Equal(oauthv1alpha1.AuthMethodNone))
		Expect(ide.Spec.GrantTypes).To(ConsistOf(oauthv1alpha1.GrantAuthorizationCode, oauthv1alpha1.GrantRefreshToken))
		Expect(ide.Spec.Trusted).To(BeFalse())
	})

	DescribeTable("refuse an invalid OAuthProvider, naming the field",
		func(mutate func(*oauthv1alpha1.OAuthProvider), want refusal) {
			p := validProvider(newNamespace())
			mutate(p)
			expectRefused(k8sClient.Create(ctx, p), want)
		},
		Entry("an unknown upstream type", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Type = "facebook"
		}, refusal{"spec.type", "Unsupported value"}),
		Entry("oidc without an issuer", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Type = oauthv1alpha1.ProviderOIDC
		}, refusal{"spec.issuerURL", "issuerURL is required when type is oidc"}),
		Entry("oauth2 without its endpoints", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Type = oauthv1alpha1.ProviderOAuth2
			p.Spec.AuthorizationURL = "https://idp.example.com/authorize"
		}, refusal{"spec", "authorizationURL, tokenURL and userInfoURL are required"}),
		Entry("an issuer that is not a URL", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Type = oauthv1alpha1.ProviderOIDC
			p.Spec.IssuerURL = "login example"
		}, refusal{"spec.issuerURL", "must be an https URL"}),
		Entry("a plain-http issuer on a public host", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Type = oauthv1alpha1.ProviderOIDC
			p.Spec.IssuerURL = "http://idp.example.com"
		}, refusal{"spec.issuerURL", "insecureAllowHTTP allows http elsewhere"}),
		Entry("a plain-http token URL on a public host", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.TokenURL = "http://10.0.0.1/token"
		}, refusal{"spec.tokenURL", "insecureAllowHTTP allows http elsewhere"}),
		Entry("an empty client ID", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.ClientID = ""
		}, refusal{"spec.clientID", "at least 1 chars long"}),
		Entry("a client secret reference without a key", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.ClientSecretRef.Key = ""
		}, refusal{"spec.clientSecretRef.key", "at least 1 chars long"}),
		Entry("a plain-http server URL on a public host", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.URL = "http://auth.example.com"
		}, refusal{"spec.server.url", "must be an https URL, or http on a loopback host"}),
		Entry("a server URL with a query", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.URL = "https://auth.example.com/?tenant=a"
		}, refusal{"spec.server.url", "no query or fragment"}),
		Entry("a callback path that is not absolute", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.CallbackPath = "oauth/callback"
		}, refusal{"spec.server.callbackPath", "should match"}),
		Entry("zero replicas", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.Replicas = ptr.To[int32](0)
		}, refusal{"spec.server.replicas", "should be greater than or equal to 1"}),
		Entry("two replicas on the memory store", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.Replicas = ptr.To[int32](2)
		}, refusal{"spec.server.replicas", "needs tokenStore.type redis"}),
		Entry("an access token TTL of two days", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.TokenTTLs.AccessToken = metav1.Duration{Duration: 48 * 60 * 60e9}
		}, refusal{"spec.server.tokenTTLs.accessToken", "between 1m and 24h"}),
		Entry("an authorization code TTL of an hour", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.TokenTTLs.AuthorizationCode = metav1.Duration{Duration: 60 * 60e9}
		}, refusal{"spec.server.tokenTTLs.authorizationCode", "between 10s and 10m"}),
		Entry("a scope with a space", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.ScopesSupported = []string{"mcp tools"}
		}, refusal{"spec.server.scopesSupported[0]", "should match"}),
		Entry("upstream scopes for a scope the server does not offer", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.ScopesSupported = []string{"mcp", "tools:write"}
			p.Spec.Server.UpstreamScopes = []oauthv1alpha1.ScopeUpstreamScopes{{Scope: "tools:admin", UpstreamScopes: []string{"repo"}}}
		}, refusal{"spec.server.upstreamScopes", "must be one of scopesSupported"}),
		Entry("upstream scopes for a scope when scopesSupported is left to its default", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.ScopesSupported = nil
			p.Spec.Server.UpstreamScopes = []oauthv1alpha1.ScopeUpstreamScopes{{Scope: "tools:write", UpstreamScopes: []string{"repo"}}}
		}, refusal{"spec.server.upstreamScopes", "must be one of scopesSupported"}),
		Entry("a scope with no upstream scope", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.ScopesSupported = []string{"mcp", "tools:write"}
			p.Spec.Server.UpstreamScopes = []oauthv1alpha1.ScopeUpstreamScopes{{Scope: "tools:write", UpstreamScopes: []string{}}}
		}, refusal{"spec.server.upstreamScopes[0].upstreamScopes", "should have at least 1 items"}),
		Entry("an upstream scope with a quote", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.ScopesSupported = []string{"mcp", "tools:write"}
			p.Spec.Server.UpstreamScopes = []oauthv1alpha1.ScopeUpstreamScopes{{Scope: "tools:write", UpstreamScopes: []string{`re"po`}}}
		}, refusal{"spec.server.upstreamScopes[0].upstreamScopes[0]", "should match"}),
		Entry("the same scope twice", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.ScopesSupported = []string{"mcp", "tools:write"}
			p.Spec.Server.UpstreamScopes = []oauthv1alpha1.ScopeUpstreamScopes{
				{Scope: "tools:write", UpstreamScopes: []string{"repo"}}, {Scope: "tools:write", UpstreamScopes: []string{"gist"}}}
		}, refusal{"spec.server.upstreamScopes[1]", "Duplicate value"}),
		Entry("an unknown access token format", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.AccessTokenFormat = "paseto"
		}, refusal{"spec.server.accessTokenFormat", "Unsupported value"}),
		Entry("a symmetric signing algorithm", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.SigningKeyAlgorithm = "HS256"
		}, refusal{"spec.server.signingKeyAlgorithm", "Unsupported value"}),
		Entry("a signing key rotation of half an hour", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.SigningKeyRotation = metav1.Duration{Duration: 30 * 60e9}
		}, refusal{"spec.server.signingKeyRotation", "must be at least 1h"}),
		Entry("a refresh reuse window of ten minutes", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.RefreshReuseWindow = &metav1.Duration{Duration: 10 * 60e9}
		}, refusal{"spec.server.refreshReuseWindow", "must be between 0s and 5m"}),
		Entry("a negative refresh reuse window", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.RefreshReuseWindow = &metav1.Duration{Duration: -1e9}
		}, refusal{"spec.server.refreshReuseWindow", "must be between 0s and 5m"}),
		Entry("a registration idle TTL of ten minutes", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.Registration.IdleTTL = &metav1.Duration{Duration: 10 * 60e9}
		}, refusal{"spec.server.registration.idleTTL", "must be 0s (off) or between 1h and 87600h"}),
		Entry("a negative registration idle TTL", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.Registration.IdleTTL = &metav1.Duration{Duration: -60 * 60e9}
		}, refusal{"spec.server.registration.idleTTL", "must be 0s (off) or between 1h and 87600h"}),
		Entry("a negative per-source registration limit", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.Registration.MaxPerSource = ptr.To[int32](-1)
		}, refusal{"spec.server.registration.maxPerSource", "greater than or equal to 0"}),
		Entry("a per-source registration limit over 100000", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.Registration.MaxPerSource = ptr.To[int32](100001)
		}, refusal{"spec.server.registration.maxPerSource", "less than or equal to 100000"}),
		Entry("the redis store without settings", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.TokenStore.Type = oauthv1alpha1.TokenStoreRedis
		}, refusal{"spec.tokenStore.redis", "redis settings are required when type is redis"}),
		Entry("a redis address without a port", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.TokenStore = oauthv1alpha1.TokenStoreSpec{Type: oauthv1alpha1.TokenStoreRedis,
				Redis: &oauthv1alpha1.RedisSpec{Addresses: []string{"redis"}}}
		}, refusal{"spec.tokenStore.redis.addresses[0]", "should match"}),
		Entry("a GitHub organization rule for Google", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Type = oauthv1alpha1.ProviderGoogle
			p.Spec.Access = &oauthv1alpha1.AccessSpec{Allow: oauthv1alpha1.AccessRules{GitHubOrganizations: []string{"acme"}}}
		}, refusal{"spec.access", "GitHub organizations and teams can only be checked when type is github"}),
		Entry("a GitHub team mapping for OIDC", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Type = oauthv1alpha1.ProviderOIDC
			p.Spec.IssuerURL = "https://idp.example.com"
			p.Spec.Access = &oauthv1alpha1.AccessSpec{ScopeMappings: []oauthv1alpha1.ScopeMapping{
				{Scopes: []string{"mcp"}, Members: oauthv1alpha1.AccessRules{GitHubTeams: []string{"acme/dev"}}}}}
		}, refusal{"spec.access", "GitHub organizations and teams can only be checked when type is github"}),
		Entry("a hosted domain for GitHub", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Access = &oauthv1alpha1.AccessSpec{Allow: oauthv1alpha1.AccessRules{GoogleHostedDomains: []string{"example.com"}}}
		}, refusal{"spec.access", "googleHostedDomains (the hd claim) need type google or oidc"}),
		Entry("groups for GitHub", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Access = &oauthv1alpha1.AccessSpec{Allow: oauthv1alpha1.AccessRules{Groups: []string{"admins"}}}
		}, refusal{"spec.access", "groups need type oidc or oauth2"}),
		Entry("a team without its organization", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Access = &oauthv1alpha1.AccessSpec{Allow: oauthv1alpha1.AccessRules{GitHubTeams: []string{"platform"}}}
		}, refusal{"spec.access.allow.githubTeams[0]", "should match"}),
		Entry("an organization that is a URL", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Access = &oauthv1alpha1.AccessSpec{Allow: oauthv1alpha1.AccessRules{GitHubOrganizations: []string{"https://github.com/acme"}}}
		}, refusal{"spec.access.allow.githubOrganizations[0]", "should match"}),
		Entry("an e-mail domain with a wildcard", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Access = &oauthv1alpha1.AccessSpec{Allow: oauthv1alpha1.AccessRules{EmailDomains: []string{"*.example.com"}}}
		}, refusal{"spec.access.allow.emailDomains[0]", "should match"}),
		Entry("an e-mail address without a domain", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Access = &oauthv1alpha1.AccessSpec{Allow: oauthv1alpha1.AccessRules{Emails: []string{"alice"}}}
		}, refusal{"spec.access.allow.emails[0]", "should match"}),
		Entry("a mapped scope the server does not support", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Access = &oauthv1alpha1.AccessSpec{ScopeMappings: []oauthv1alpha1.ScopeMapping{
				{Scopes: []string{"tools:admin"}, Members: oauthv1alpha1.AccessRules{GitHubTeams: []string{"acme/admins"}}}}}
		}, refusal{"spec.access.scopeMappings", "must be in server.scopesSupported"}),
		Entry("a scope mapping without members", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Access = &oauthv1alpha1.AccessSpec{ScopeMappings: []oauthv1alpha1.ScopeMapping{{Scopes: []string{"mcp"}}}}
		}, refusal{"spec.access.scopeMappings[0].members", "members needs at least one rule"}),
		Entry("an API URL for Google", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Type = oauthv1alpha1.ProviderGoogle
			p.Spec.APIURL = "https://api.example.com"
		}, refusal{"spec.apiURL", "apiURL is only for type github"}),
		Entry("a metadata-document domain with a scheme", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.ClientPolicy = &oauthv1alpha1.ClientPolicySpec{MetadataDocumentDomains: []string{"https://example.com"}}
		}, refusal{"spec.clientPolicy.metadataDocumentDomains[0]", "should match"}),
		Entry("a metadata-document wildcard in the middle", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.ClientPolicy = &oauthv1alpha1.ClientPolicySpec{MetadataDocumentDomains: []string{"a.*.example.com"}}
		}, refusal{"spec.clientPolicy.metadataDocumentDomains[0]", "should match"}),
		Entry("a max scope the server does not support", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.ClientPolicy = &oauthv1alpha1.ClientPolicySpec{MaxScopes: oauthv1alpha1.MaxScopesSpec{Dynamic: []string{"tools:admin"}}}
		}, refusal{"spec.clientPolicy.maxScopes", "every scope of clientPolicy.maxScopes must be in server.scopesSupported"}),
		Entry("an empty redirect URI pattern", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.ClientPolicy = &oauthv1alpha1.ClientPolicySpec{RedirectURIPatterns: []string{""}}
		}, refusal{"spec.clientPolicy.redirectURIPatterns[0]", "should be at least 1 chars long"}),
		Entry("redis settings on the memory store", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.TokenStore = oauthv1alpha1.TokenStoreSpec{Type: oauthv1alpha1.TokenStoreMemory,
				Redis: &oauthv1alpha1.RedisSpec{Addresses: []string{"redis:6379"}}}
		}, refusal{"spec.tokenStore", "redis settings are only allowed when type is redis"}),
	)

	It("keep a refresh reuse window of 0s, which turns the window off, instead of defaulting it", func() {
		p := validProvider(newNamespace())
		p.Spec.Server.RefreshReuseWindow = &metav1.Duration{}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		get(p, p.Namespace, p.Name)
		Expect(p.Spec.Server.RefreshReuseWindow).To(Equal(&metav1.Duration{}))
	})

	It("keep a registration idle TTL and per-source limit of 0, which turn them off", func() {
		p := validProvider(newNamespace())
		p.Spec.Server.Registration = oauthv1alpha1.RegistrationSpec{IdleTTL: &metav1.Duration{}, MaxPerSource: ptr.To[int32](0)}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		get(p, p.Namespace, p.Name)
		Expect(p.Spec.Server.Registration.IdleTTL).To(Equal(&metav1.Duration{}))
		Expect(p.Spec.Server.Registration.MaxPerSource).To(Equal(ptr.To[int32](0)))
	})

	DescribeTable("refuse an invalid MCPClient, naming the field",
		func(mutate func(*oauthv1alpha1.MCPClient), want refusal) {
			c := validClient(newNamespace())
			mutate(c)
			expectRefused(k8sClient.Create(ctx, c), want)
		},
		Entry("no redirect URIs", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.RedirectURIs = nil
		}, refusal{"spec.redirectURIs", "redirectURIs are required with the authorization_code grant"}),
		Entry("client_credentials on a public client", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantClientCredentials}
		}, refusal{"spec.grantTypes", "client_credentials needs a confidential client"}),
		Entry("a device CLI with refresh only", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.RedirectURIs = nil
			c.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantRefreshToken}
		}, refusal{"spec.grantTypes", "refresh_token alone obtains no first token"}),
		Entry("approveClientID beside redirect URIs", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.ApproveClientID = "https://tools.example.org/client.json"
		}, refusal{"spec", "not both"}),
		Entry("approveClientID with scopes", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.RedirectURIs = nil
			c.Spec.ApproveClientID = "mcp_client_abc"
			c.Spec.Scopes = []string{"mcp"}
		}, refusal{"spec.approveClientID", "approveClientID only approves a client that registered itself"}),
		Entry("approveClientID with a client secret", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.RedirectURIs = nil
			c.Spec.ApproveClientID = "mcp_client_abc"
			c.Spec.TokenEndpointAuthMethod = oauthv1alpha1.AuthMethodClientSecretBasic
		}, refusal{"spec.approveClientID", "approveClientID only approves"}),
		Entry("approveClientID with a space", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.RedirectURIs = nil
			c.Spec.ApproveClientID = "mcp client"
		}, refusal{"spec.approveClientID", "should match"}),
		Entry("a javascript: redirect URI", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.RedirectURIs = []string{"javascript:alert(1)"}
		}, refusal{"spec.redirectURIs", "each redirect URI must be https"}),
		Entry("a plain-http redirect URI on a public host", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.RedirectURIs = []string{"http://app.example.com/callback"}
		}, refusal{"spec.redirectURIs", "each redirect URI must be https"}),
		Entry("a redirect URI with a fragment", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.RedirectURIs = []string{"https://app.example.com/callback#x"}
		}, refusal{"spec.redirectURIs", "without fragment or wildcard"}),
		Entry("a wildcard redirect URI", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.RedirectURIs = []string{"https://*.example.com/callback"}
		}, refusal{"spec.redirectURIs", "without fragment or wildcard"}),
		Entry("an unsupported authentication method", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.TokenEndpointAuthMethod = "private_key_jwt"
		}, refusal{"spec.tokenEndpointAuthMethod", "Unsupported value"}),
		Entry("refresh without authorization_code", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantRefreshToken}
		}, refusal{"spec.grantTypes", "must include authorization_code, client_credentials or"}),
		Entry("an unknown grant type", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.GrantTypes = []oauthv1alpha1.GrantType{"password"}
		}, refusal{"spec.grantTypes[0]", "Unsupported value"}),
		Entry("no provider reference", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.ProviderRef.Name = ""
		}, refusal{"spec.providerRef.name", "at least 1 chars long"}),
		Entry("upstream tokens for a public client", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.IntrospectUpstream = true
		}, refusal{"spec.introspectUpstream", "introspectUpstream needs a confidential client"}),
		Entry("resources on a public client", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.Resources = []string{"https://mcp.example.com/mcp"}
		}, refusal{"spec.resources", "resources need a confidential client"}),
		Entry("a relative resource", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.TokenEndpointAuthMethod = oauthv1alpha1.AuthMethodClientSecretBasic
			c.Spec.Resources = []string{"/mcp"}
		}, refusal{"spec.resources", "each resource must be an absolute http(s) URI"}),
		Entry("a resource with a fragment", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.TokenEndpointAuthMethod = oauthv1alpha1.AuthMethodClientSecretBasic
			c.Spec.Resources = []string{"https://mcp.example.com/mcp#tools"}
		}, refusal{"spec.resources", "without a fragment"}),
		Entry("a resource without a host", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.TokenEndpointAuthMethod = oauthv1alpha1.AuthMethodClientSecretBasic
			c.Spec.Resources = []string{"urn:example:mcp"}
		}, refusal{"spec.resources", "each resource must be an absolute http(s) URI"}),
		Entry("a credentials Secret name that is not a DNS name", func(c *oauthv1alpha1.MCPClient) {
			c.Spec.SecretName = "Bad_Name"
		}, refusal{"spec.secretName", "should match"}),
	)

	It("accept a plain-http upstream on another host only with insecureAllowHTTP", func() {
		p := validProvider(newNamespace())
		p.Spec.Type = oauthv1alpha1.ProviderOIDC
		p.Spec.IssuerURL = "http://10.88.0.1:9400"
		p.Spec.InsecureAllowHTTP = true
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
	})

	It("accept the resources of a confidential MCP server", func() {
		c := validClient(newNamespace())
		c.Spec.TokenEndpointAuthMethod = oauthv1alpha1.AuthMethodClientSecretBasic
		c.Spec.Resources = []string{"https://mcp.example.com/mcp", "http://127.0.0.1:3000/mcp"}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
	})

	It("accept agents without redirect URIs: a client_credentials client and a device CLI", func() {
		ns := newNamespace()
		agent := validClient(ns)
		agent.Name = "agent"
		agent.Spec.RedirectURIs = nil
		agent.Spec.TokenEndpointAuthMethod = oauthv1alpha1.AuthMethodClientSecretBasic
		agent.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantClientCredentials}
		Expect(k8sClient.Create(ctx, agent)).To(Succeed())
		cli := validClient(ns)
		cli.Name = "cli"
		cli.Spec.RedirectURIs = nil
		cli.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantDeviceCode, oauthv1alpha1.GrantRefreshToken}
		Expect(k8sClient.Create(ctx, cli)).To(Succeed())
		p := validProvider(ns)
		p.Spec.Server.DeviceFlow = &oauthv1alpha1.DeviceFlowSpec{Enabled: true}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
	})

	It("accept an MCPClient that only approves an existing client", func() {
		c := validClient(newNamespace())
		c.Spec.RedirectURIs = nil
		c.Spec.ApproveClientID = "https://tools.example.org/client.json"
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
	})

	It("accept a client policy with scopes the server supports", func() {
		p := validProvider(newNamespace())
		p.Spec.Server.ScopesSupported = []string{"mcp", "tools:write"}
		p.Spec.ClientPolicy = &oauthv1alpha1.ClientPolicySpec{
			MetadataDocumentDomains: []string{"*.example.com", "claude.ai"},
			RedirectURIPatterns:     []string{"http://127.0.0.1/*"},
			MaxScopes:               oauthv1alpha1.MaxScopesSpec{PreRegistered: []string{"mcp", "tools:write"}, Dynamic: []string{"mcp"}},
			RequireApproval:         true,
		}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
	})

	It("accept a private-use scheme redirect URI for native apps (RFC 8252 §7.1)", func() {
		c := validClient(newNamespace())
		c.Spec.RedirectURIs = []string{"com.example.ide:/oauth/callback", "http://[::1]/cb"}
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
	})
})

// expectRefused asserts the apiserver refused an object as invalid, naming the field.
func expectRefused(err error, want refusal) {
	GinkgoHelper()
	Expect(err).To(HaveOccurred(), "the apiserver accepted the object")
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
	Expect(err.Error()).To(ContainSubstring(want.phrase))
	status, ok := err.(apierrors.APIStatus)
	Expect(ok).To(BeTrue())
	var fields []string
	for _, cause := range status.Status().Details.Causes {
		fields = append(fields, cause.Field)
	}
	Expect(fields).To(ContainElement(want.field), fmt.Sprintf("error: %v", err))
}

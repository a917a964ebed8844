package controllers

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// provider is a minimal valid OAuthProvider, as the apiserver stores it (defaults in).
func provider() *oauthv1alpha1.OAuthProvider {
	return &oauthv1alpha1.OAuthProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "github", Namespace: "team-a", UID: "uid-1", Generation: 3},
		Spec: oauthv1alpha1.OAuthProviderSpec{
			Type:            oauthv1alpha1.ProviderGitHub,
			ClientID:        "Iv1.abc",
			ClientSecretRef: oauthv1alpha1.SecretKeyReference{Name: "github-oauth", Key: "client-secret"},
			Server: oauthv1alpha1.ServerSpec{
				URL:                       "https://auth.example.com/",
				CallbackPath:              "/oauth/callback",
				Replicas:                  ptr.To[int32](1),
				DynamicClientRegistration: ptr.To(true),
				TokenTTLs: oauthv1alpha1.TokenTTLs{
					AuthorizationCode:  metav1.Duration{Duration: 5 * time.Minute},
					AccessToken:        metav1.Duration{Duration: 15 * time.Minute},
					RefreshToken:       metav1.Duration{Duration: 24 * time.Hour},
					ClientRegistration: metav1.Duration{Duration: 8760 * time.Hour},
					ExternalToken:      metav1.Duration{Duration: 24 * time.Hour},
				},
			},
			TokenStore: oauthv1alpha1.TokenStoreSpec{Type: oauthv1alpha1.TokenStoreMemory},
		},
	}
}

// withRedis gives p a Redis store with a password, Sentinel and two replicas, and TLS.
func withRedis(p *oauthv1alpha1.OAuthProvider) *oauthv1alpha1.OAuthProvider {
	p.Spec.Server.Replicas = ptr.To[int32](2)
	p.Spec.Server.TLS = &oauthv1alpha1.ServerTLS{SecretName: "auth-tls"}
	p.Spec.TokenStore = oauthv1alpha1.TokenStoreSpec{Type: oauthv1alpha1.TokenStoreRedis, Redis: &oauthv1alpha1.RedisSpec{
		Addresses:         []string{"sentinel-0:26379", "sentinel-1:26379"},
		MasterName:        "mymaster",
		PasswordSecretRef: &oauthv1alpha1.SecretKeyReference{Name: "redis", Key: "password"},
		TLS:               &oauthv1alpha1.RedisTLS{Enabled: true, CASecretRef: &oauthv1alpha1.SecretKeyReference{Name: "redis-ca", Key: "ca.pem"}},
	}}
	return p
}

// parseRendered renders p and parses the result as the server will.
func parseRendered(t *testing.T, p *oauthv1alpha1.OAuthProvider) *config.Config {
	t.Helper()
	cfg, err := renderConfig(p)
	if err != nil {
		t.Fatalf("renderConfig: %v", err)
	}
	data, err := config.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := config.Parse(data, nil)
	if err != nil {
		t.Fatalf("the server refuses the rendered config: %v\n%s", err, data)
	}
	return parsed
}

func TestRenderConfigForAPresetIsWhatTheServerReads(t *testing.T) {
	g := NewWithT(t)
	c := parseRendered(t, provider())
	g.Expect(c.Issuer).To(Equal("https://auth.example.com"), "trailing slash removed, as the server does")
	g.Expect(c.Upstream.Type).To(Equal(config.UpstreamGitHub))
	g.Expect(c.Upstream.ClientID).To(Equal("Iv1.abc"))
	g.Expect(c.Upstream.ClientSecretFile).To(Equal("/etc/mcpauth/upstream/client-secret"))
	g.Expect(c.Secrets.EncryptionKeyFile).To(Equal("/etc/mcpauth/keys/encryption-key"))
	g.Expect(c.Secrets.SigningKeysFile).To(Equal("/etc/mcpauth/signing-keys/signing-keys.json"))
	g.Expect(c.Secrets.AdminTokenFile).To(Equal("/etc/mcpauth/admin/admin-token"))
	g.Expect(c.Tokens.AccessTokenFormat).To(Equal(config.AccessTokenJWT))
	g.Expect(c.Tokens.RefreshReuseWindow.Duration()).To(Equal(30 * time.Second))
	g.Expect(c.ClientsSecret).To(Equal(&config.ClientsSecret{Namespace: "team-a", Name: "github-authserver-clients", Key: "clients.yaml"}))
	g.Expect(c.ClientsFile).To(BeEmpty())
	g.Expect(c.Store.Type).To(Equal(config.StoreMemory))
	g.Expect(c.ScopesSupported).To(Equal([]string{"mcp"}))
	g.Expect(c.ListenAddress).To(Equal(":8080"))
	g.Expect(c.TLS).To(Equal(config.TLS{}))
	g.Expect(c.DynamicRegistration.Enabled).To(BeTrue())
	g.Expect(c.DeviceAuthorization.Enabled).To(BeFalse(), "the device flow is off unless asked for")
	g.Expect(c.DynamicRegistration.IdleTTL.Duration()).To(Equal(720*time.Hour), "the server's defaults without a registration block")
	g.Expect(c.DynamicRegistration.MaxPerSource).To(Equal(20))
}

func TestRenderConfigCopiesTheRegistrationLimits(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	p.Spec.Server.Registration = oauthv1alpha1.RegistrationSpec{IdleTTL: &metav1.Duration{Duration: 48 * time.Hour}, MaxPerSource: ptr.To[int32](5)}
	c := parseRendered(t, p)
	g.Expect(c.DynamicRegistration.IdleTTL.Duration()).To(Equal(48 * time.Hour))
	g.Expect(c.DynamicRegistration.MaxPerSource).To(Equal(5))

	p.Spec.Server.Registration = oauthv1alpha1.RegistrationSpec{IdleTTL: &metav1.Duration{}, MaxPerSource: ptr.To[int32](0)}
	c = parseRendered(t, p)
	g.Expect(c.DynamicRegistration.IdleTTL.Duration()).To(BeZero(), "0s turns idle removal off; it is not unset")
	g.Expect(c.DynamicRegistration.MaxPerSource).To(BeZero(), "0 turns the limit off; it is not unset")
}

func TestRenderConfigCopiesTheServerSettings(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	p.Spec.Server.ScopesSupported = []string{"mcp:tools", "mcp:resources"}
	p.Spec.Server.DisplayName = "Tools"
	p.Spec.Server.CallbackPath = "/cb"
	p.Spec.Server.DynamicClientRegistration = ptr.To(false)
	p.Spec.Server.AllowPKCEPlain = true
	p.Spec.Server.TokenTTLs.AccessToken = metav1.Duration{Duration: 10 * time.Minute}
	p.Spec.Server.AccessTokenFormat = oauthv1alpha1.AccessTokenOpaque
	p.Spec.Server.RefreshReuseWindow = &metav1.Duration{}
	p.Spec.Server.DeviceFlow = &oauthv1alpha1.DeviceFlowSpec{Enabled: true}
	p.Spec.Scopes = []string{"read:user"}
	p.Spec.UserIDField = "login"
	c := parseRendered(t, p)
	g.Expect(c.ScopesSupported).To(Equal([]string{"mcp:tools", "mcp:resources"}))
	g.Expect(c.DefaultScopes).To(Equal([]string{"mcp:tools", "mcp:resources"}), "the default mcp scope would not be supported")
	g.Expect(c.DisplayName).To(Equal("Tools"))
	g.Expect(c.CallbackPath).To(Equal("/cb"))
	g.Expect(c.DynamicRegistration.Enabled).To(BeFalse())
	g.Expect(c.AllowPKCEPlain).To(BeTrue())
	g.Expect(c.Tokens.AccessTokenTTL.Duration()).To(Equal(10 * time.Minute))
	g.Expect(c.Tokens.AccessTokenFormat).To(Equal(config.AccessTokenOpaque))
	g.Expect(c.Tokens.RefreshReuseWindow.Duration()).To(BeZero(), "0s turns the window off; it is not unset")
	g.Expect(c.DeviceAuthorization.Enabled).To(BeTrue())
	g.Expect(c.Upstream.Scopes).To(Equal([]string{"read:user"}))
	g.Expect(c.Upstream.UserIDField).To(Equal("login"))
}

func TestRenderConfigPassesPresetEndpointOverrides(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	p.Spec.AuthorizationURL = "https://github.example.com/login/oauth/authorize"
	p.Spec.TokenURL = "https://github.example.com/login/oauth/access_token"
	p.Spec.UserInfoURL = "https://github.example.com/api/v3/user"
	c := parseRendered(t, p)
	g.Expect(c.Upstream.AuthorizationURL).To(Equal(p.Spec.AuthorizationURL))
	g.Expect(c.Upstream.TokenURL).To(Equal(p.Spec.TokenURL))
	g.Expect(c.Upstream.UserInfoURL).To(Equal(p.Spec.UserInfoURL))
}

// A development provider on the node is plain http on a host the server's pods reach:
// the server accepts it only when the spec says so, and the operator passes that on.
func TestRenderConfigPassesInsecureAllowHTTP(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	p.Spec.Type = oauthv1alpha1.ProviderOIDC
	p.Spec.IssuerURL = "http://10.88.0.1:9400"
	_, err := renderConfig(p)
	g.Expect(err).To(MatchError(ContainSubstring("spec.issuerURL")), "http on another host without the flag")
	p.Spec.InsecureAllowHTTP = true
	c := parseRendered(t, p)
	g.Expect(c.Upstream.InsecureAllowHTTP).To(BeTrue())
	g.Expect(c.Upstream.IssuerURL).To(Equal("http://10.88.0.1:9400"))
}

func TestRenderConfigCarriesTheAccessRules(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	p.Spec.Server.ScopesSupported = []string{"mcp", "tools:write", "tools:admin"}
	p.Spec.APIURL = "https://ghe.example.com/api/v3"
	p.Spec.Access = &oauthv1alpha1.AccessSpec{
		Allow: oauthv1alpha1.AccessRules{GitHubOrganizations: []string{"acme"}, Users: []string{"583231"}},
		ScopeMappings: []oauthv1alpha1.ScopeMapping{
			{Scopes: []string{"tools:admin"}, Members: oauthv1alpha1.AccessRules{GitHubTeams: []string{"acme/platform"}}},
			{Scopes: []string{"tools:write"}, Members: oauthv1alpha1.AccessRules{GitHubOrganizations: []string{"acme"}}},
		},
	}
	c := parseRendered(t, p)
	g.Expect(c.Upstream.APIURL).To(Equal("https://ghe.example.com/api/v3"))
	g.Expect(c.Access).To(Equal(config.Access{
		Allow: config.AccessRules{GitHubOrganizations: []string{"acme"}, Users: []string{"583231"}},
		ScopeMappings: []config.ScopeMapping{
			{Scopes: []string{"tools:admin"}, Members: config.AccessRules{GitHubTeams: []string{"acme/platform"}}},
			{Scopes: []string{"tools:write"}, Members: config.AccessRules{GitHubOrganizations: []string{"acme"}}},
		},
	}))
	g.Expect(c.Upstream.Scopes).To(BeEmpty(), "the server adds read:org to the preset's scopes itself")

	g.Expect(parseRendered(t, provider()).Access.IsZero()).To(BeTrue(), "no access spec: everyone, as before")
}

func TestRenderConfigCarriesTheClientPolicy(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	p.Spec.Server.ScopesSupported = []string{"mcp", "tools:write"}
	p.Spec.ClientPolicy = &oauthv1alpha1.ClientPolicySpec{
		MetadataDocumentDomains: []string{"*.example.com"},
		RedirectURIPatterns:     []string{"http://127.0.0.1/*", "cursor://*"},
		MaxScopes:               oauthv1alpha1.MaxScopesSpec{PreRegistered: []string{"mcp", "tools:write"}, Dynamic: []string{"mcp"}},
		RequireApproval:         true,
	}
	g.Expect(parseRendered(t, p).ClientPolicy).To(Equal(config.ClientPolicy{
		MetadataDocumentDomains: []string{"*.example.com"},
		RedirectURIPatterns:     []string{"http://127.0.0.1/*", "cursor://*"},
		MaxScopes:               config.MaxScopes{PreRegistered: []string{"mcp", "tools:write"}, Dynamic: []string{"mcp"}},
		RequireApproval:         true,
	}))
	g.Expect(parseRendered(t, provider()).ClientPolicy.IsZero()).To(BeTrue(), "no client policy: every client, as before")
}

func TestRenderConfigForRedisAndTLS(t *testing.T) {
	g := NewWithT(t)
	c := parseRendered(t, withRedis(provider()))
	g.Expect(c.Store.Type).To(Equal(config.StoreRedis))
	r := c.Store.Redis
	g.Expect(r.Addresses).To(Equal([]string{"sentinel-0:26379", "sentinel-1:26379"}))
	g.Expect(r.MasterName).To(Equal("mymaster"))
	g.Expect(r.PasswordFile).To(Equal("/etc/mcpauth/redis/password"))
	g.Expect(r.TLS).To(Equal(config.RedisTLS{Enabled: true, CAFile: "/etc/mcpauth/redis-ca/ca.crt"}))
	g.Expect(r.KeyPrefix).To(Equal("team-a.github"))
	g.Expect(c.TLS).To(Equal(config.TLS{CertFile: "/etc/mcpauth/tls/tls.crt", KeyFile: "/etc/mcpauth/tls/tls.key"}))

	p := withRedis(provider())
	p.Spec.TokenStore.Redis.KeyPrefix = "tenant_7"
	g.Expect(parseRendered(t, p).Store.Redis.KeyPrefix).To(Equal("tenant_7"))
}

func TestRenderConfigRefusesWhatTheServerRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*oauthv1alpha1.OAuthProvider)
		want   string
	}{
		{"an issuer for GitHub, which is not OpenID Connect", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.IssuerURL = "https://github.com"
		}, "spec.issuerURL: not allowed when upstream.type is \"github\""},
		{"a refresh token shorter than the access token", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.TokenTTLs.AccessToken = metav1.Duration{Duration: 2 * time.Hour}
			p.Spec.Server.TokenTTLs.RefreshToken = metav1.Duration{Duration: time.Hour}
		}, "spec.server.tokenTTLs.refreshToken: 1h is shorter"},
		{"a groups claim without a groups rule", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Access = &oauthv1alpha1.AccessSpec{GroupsClaim: "roles",
				Allow: oauthv1alpha1.AccessRules{GitHubOrganizations: []string{"acme"}}}
		}, "spec.access.groupsClaim: set, but no rule names groups"},
		{"explicit upstream scopes without read:org for an organization rule", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Scopes = []string{"read:user"}
			p.Spec.Access = &oauthv1alpha1.AccessSpec{Allow: oauthv1alpha1.AccessRules{GitHubOrganizations: []string{"acme"}}}
		}, "spec.scopes: must include read:org"},
		{"several Redis Cluster nodes with a database number", func(p *oauthv1alpha1.OAuthProvider) {
			withRedis(p)
			p.Spec.TokenStore.Redis.MasterName = ""
			p.Spec.TokenStore.Redis.DB = 2
		}, "spec.tokenStore.redis.db: must be 0"},
		{"a refresh reuse window of ten minutes (an object CEL never saw)", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.RefreshReuseWindow = &metav1.Duration{Duration: 10 * time.Minute}
		}, "spec.server.refreshReuseWindow: 10m is outside [0s, 5m]"},
		{"a registration idle TTL of ten minutes (an object CEL never saw)", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.Registration.IdleTTL = &metav1.Duration{Duration: 10 * time.Minute}
		}, "spec.server.registration.idleTTL: 10m is outside [1h, 87600h]"},
		{"a redirect URI pattern with a star in the path (CEL does not parse patterns)", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.ClientPolicy = &oauthv1alpha1.ClientPolicySpec{RedirectURIPatterns: []string{"https://example.com/*/cb"}}
		}, `spec.clientPolicy.redirectURIPatterns[0]: redirect URI pattern "https://example.com/*/cb": '*' may only end the pattern`},
		{"a single-label wildcard domain", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.ClientPolicy = &oauthv1alpha1.ClientPolicySpec{MetadataDocumentDomains: []string{"*.com"}}
		}, `spec.clientPolicy.metadataDocumentDomains[0]: domain pattern "*.com": a wildcard needs at least two labels`},
		{"an unknown token format", func(p *oauthv1alpha1.OAuthProvider) {
			p.Spec.Server.AccessTokenFormat = "paseto"
		}, `spec.server.accessTokenFormat: "paseto" is not one of jwt, opaque`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			p := provider()
			tt.mutate(p)
			cfg, err := renderConfig(p)
			g.Expect(cfg).NotTo(BeNil(), "the config is returned even when invalid")
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			g.Expect(err.Error()).NotTo(ContainSubstring("\n"), "a condition message is one line")
		})
	}
}

func TestDefaultKeyPrefix(t *testing.T) {
	g := NewWithT(t)
	g.Expect(defaultKeyPrefix("ns", "p")).To(Equal("ns.p"))
	long1 := defaultKeyPrefix(strings.Repeat("n", 63), strings.Repeat("a", 60)+"1")
	long2 := defaultKeyPrefix(strings.Repeat("n", 63), strings.Repeat("a", 60)+"2")
	g.Expect(long1).To(HaveLen(maxKeyPrefix))
	g.Expect(long1).NotTo(Equal(long2), "cut prefixes stay distinct")
	g.Expect(long1).To(MatchRegexp(`^[A-Za-z0-9._-]+$`))
}

func TestBuildDeploymentRunsTheServerLockedDown(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	p.Spec.Server.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")}}
	d := buildDeployment(p, "example.com/mcpauth:1", "hash-1")

	g.Expect(d.Name).To(Equal("github-authserver"))
	g.Expect(d.Spec.Replicas).To(Equal(ptr.To[int32](1)))
	g.Expect(d.Spec.Selector.MatchLabels).To(Equal(map[string]string{labelName: "mcpauth-authserver", labelInstance: "github"}))
	g.Expect(d.Spec.Template.Labels).To(HaveKeyWithValue(labelInstance, "github"))
	g.Expect(d.Spec.Template.Annotations).To(HaveKeyWithValue(inputsHashAnnotation, "hash-1"))
	pod := d.Spec.Template.Spec
	g.Expect(pod.ServiceAccountName).To(Equal("github-authserver"))
	g.Expect(pod.AutomountServiceAccountToken).To(Equal(ptr.To(true)))
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(Equal(ptr.To(true)))
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))

	g.Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]
	g.Expect(c.Image).To(Equal("example.com/mcpauth:1"))
	g.Expect(c.Command).To(Equal([]string{"/authserver"}))
	g.Expect(c.Args).To(Equal([]string{"--config", "/etc/mcpauth/config/config.yaml"}))
	g.Expect(c.Env).To(ContainElement(HaveField("ValueFrom.FieldRef.FieldPath", "metadata.namespace")))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Scheme).To(Equal(corev1.URISchemeHTTP))
	g.Expect(c.Resources.Limits.Memory().String()).To(Equal("128Mi"))
	// The Go runtime is told 90% of the limit, in bytes.
	g.Expect(c.Env).To(ContainElement(corev1.EnvVar{Name: "GOMEMLIMIT", Value: "120795948"}))
	sc := c.SecurityContext
	g.Expect(sc.RunAsNonRoot).To(Equal(ptr.To(true)))
	g.Expect(sc.ReadOnlyRootFilesystem).To(Equal(ptr.To(true)))
	g.Expect(sc.AllowPrivilegeEscalation).To(Equal(ptr.To(false)))
	g.Expect(sc.Capabilities.Drop).To(Equal([]corev1.Capability{"ALL"}))
	g.Expect(sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))

	// The upstream secret is mounted by reference, only its one key.
	g.Expect(pod.Volumes).To(ContainElement(And(
		HaveField("Name", "upstream"),
		HaveField("Secret.SecretName", "github-oauth"),
		HaveField("Secret.Items", []corev1.KeyToPath{{Key: "client-secret", Path: "client-secret"}}),
	)))
	g.Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "keys"), HaveField("Secret.SecretName", "github-authserver-keys"))))
	g.Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "signing-keys"), HaveField("Secret.SecretName", "github-authserver-signing-keys"),
		HaveField("Secret.Items", []corev1.KeyToPath{{Key: "signing-keys.json", Path: "signing-keys.json"}}))))
	g.Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "admin"), HaveField("Secret.SecretName", "github-authserver-admin"),
		HaveField("Secret.Items", []corev1.KeyToPath{{Key: "admin-token", Path: "admin-token"}}))))
	g.Expect(c.VolumeMounts).To(ContainElements(
		corev1.VolumeMount{Name: "signing-keys", MountPath: "/etc/mcpauth/signing-keys", ReadOnly: true},
		corev1.VolumeMount{Name: "admin", MountPath: "/etc/mcpauth/admin", ReadOnly: true}))
	g.Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "config"), HaveField("ConfigMap.Name", "github-authserver-config"))))
	g.Expect(pod.Volumes).NotTo(ContainElement(HaveField("Name", "tls")))
	for _, m := range c.VolumeMounts {
		g.Expect(m.SubPath).To(BeEmpty(), "subPath mounts never see a rotated Secret")
	}

	p.Spec.Server.Image = "example.com/custom:2"
	g.Expect(buildDeployment(p, "example.com/mcpauth:1", "h").Spec.Template.Spec.Containers[0].Image).To(Equal("example.com/custom:2"))

	p.Spec.Server.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}
	g.Expect(buildDeployment(p, "i", "h").Spec.Template.Spec.Containers[0].Env).NotTo(ContainElement(HaveField("Name", "GOMEMLIMIT")),
		"without a limit the runtime has none")
}

func TestBuildDeploymentMountsEveryReferencedSecret(t *testing.T) {
	g := NewWithT(t)
	d := buildDeployment(withRedis(provider()), "img", "h")
	pod := d.Spec.Template.Spec
	volumes := map[string]*corev1.SecretVolumeSource{}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			volumes[v.Name] = v.Secret
		}
	}
	g.Expect(volumes).To(HaveKey("tls"))
	g.Expect(volumes["tls"].SecretName).To(Equal("auth-tls"))
	g.Expect(volumes["redis-password"].Items).To(Equal([]corev1.KeyToPath{{Key: "password", Path: "password"}}))
	g.Expect(volumes["redis-ca"].Items).To(Equal([]corev1.KeyToPath{{Key: "ca.pem", Path: "ca.crt"}}))
	c := pod.Containers[0]
	g.Expect(c.Ports).To(Equal([]corev1.ContainerPort{{Name: "https", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}))
	g.Expect(c.ReadinessProbe.HTTPGet.Scheme).To(Equal(corev1.URISchemeHTTPS))
	g.Expect(c.ReadinessProbe.HTTPGet.Port).To(Equal(intstr.FromString("https")))
	g.Expect(d.Spec.Replicas).To(Equal(ptr.To[int32](2)))
}

func TestReferencedSecretNames(t *testing.T) {
	g := NewWithT(t)
	g.Expect(referencedSecretNames(provider())).To(Equal([]string{"github-oauth"}))
	p := withRedis(provider())
	p.Spec.TokenStore.Redis.PasswordSecretRef.Name = "github-oauth" // one Secret, two keys
	g.Expect(referencedSecretNames(p)).To(Equal([]string{"github-oauth", "redis-ca", "auth-tls"}))
}

func TestInputsHash(t *testing.T) {
	p := provider()
	inputs := hashedSecrets(p)
	data := func(secret string) map[string]map[string][]byte {
		return map[string]map[string][]byte{
			"github-authserver-keys":         {encryptionKeyKey: []byte("k")},
			"github-authserver-admin":        {adminTokenKey: []byte("a")},
			"github-authserver-signing-keys": {signingKeysKey: []byte(`{"keys":[]}`)},
			"github-oauth":                   {"client-secret": []byte(secret), "unused": []byte("x")},
		}
	}
	base := inputsHash([]byte("cfg"), inputs, data("s1"))
	tests := []struct {
		name    string
		hash    string
		changed bool
	}{
		{"the same inputs hash the same", inputsHash([]byte("cfg"), inputs, data("s1")), false},
		{"a rotated upstream secret changes it", inputsHash([]byte("cfg"), inputs, data("s2")), true},
		{"a changed config changes it", inputsHash([]byte("cfg2"), inputs, data("s1")), true},
		{"a key the pod does not mount does not", func() string {
			d := data("s1")
			d["github-oauth"]["unused"] = []byte("y")
			return inputsHash([]byte("cfg"), inputs, d)
		}(), false},
		{"moving bytes between config and secret changes it", inputsHash([]byte("cfgs"), inputs, data("1")), true},
		{"a new admin token changes it", func() string {
			d := data("s1")
			d["github-authserver-admin"][adminTokenKey] = []byte("b")
			return inputsHash([]byte("cfg"), inputs, d)
		}(), true},
		// The server re-reads the signing keys; a rotation must not roll the pods.
		{"rotated signing keys do not", func() string {
			d := data("s1")
			d["github-authserver-signing-keys"][signingKeysKey] = []byte(`{"keys":[{"kid":"new"}]}`)
			return inputsHash([]byte("cfg"), inputs, d)
		}(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(tt.hash != base).To(Equal(tt.changed))
		})
	}
}

func TestBuildRoleGrantsOnlyTheRegistrySecret(t *testing.T) {
	g := NewWithT(t)
	role := buildRole(provider())
	g.Expect(role.Rules).To(HaveLen(1))
	g.Expect(role.Rules[0].Resources).To(Equal([]string{"secrets"}))
	g.Expect(role.Rules[0].ResourceNames).To(Equal([]string{"github-authserver-clients"}))
	g.Expect(role.Rules[0].Verbs).To(ConsistOf("get", "list", "watch"))
	rb := buildRoleBinding(provider())
	g.Expect(rb.RoleRef.Name).To(Equal("github-authserver"))
	g.Expect(rb.Subjects).To(ConsistOf(HaveField("Name", "github-authserver")))
}

func TestBuildServiceAndBudget(t *testing.T) {
	g := NewWithT(t)
	svc := buildService(provider())
	g.Expect(svc.Spec.Ports).To(Equal([]corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}))
	g.Expect(buildService(withRedis(provider())).Spec.Ports[0].Port).To(Equal(int32(443)))

	g.Expect(buildPodDisruptionBudget(provider())).To(BeNil())
	pdb := buildPodDisruptionBudget(withRedis(provider()))
	g.Expect(pdb.Spec.MaxUnavailable).To(Equal(ptr.To(intstr.FromInt32(1))))
	g.Expect(pdb.Spec.Selector.MatchLabels).To(Equal(selectorLabels(provider())))
}

func TestEncryptionKeys(t *testing.T) {
	g := NewWithT(t)
	a, err := newEncryptionKey()
	g.Expect(err).NotTo(HaveOccurred())
	b, _ := newEncryptionKey()
	g.Expect(a).NotTo(Equal(b))
	g.Expect(validEncryptionKey(a)).To(BeTrue())
	raw, err := base64.StdEncoding.DecodeString(string(a))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(raw).To(HaveLen(32))
	g.Expect(validEncryptionKey([]byte(base64.StdEncoding.EncodeToString(make([]byte, 16))))).To(BeFalse())
	g.Expect(validEncryptionKey(nil)).To(BeFalse())
}

func TestNeedsSpecUpdate(t *testing.T) {
	desired := buildDeployment(provider(), "img", "h").Spec
	stored := func(mutate func(*appsv1.DeploymentSpec)) *appsv1.Deployment {
		d := &appsv1.Deployment{Spec: *desired.DeepCopy()}
		// What the apiserver fills in must not count as a difference.
		d.Spec.RevisionHistoryLimit = ptr.To[int32](10)
		d.Spec.Template.Spec.Containers[0].TerminationMessagePath = "/dev/termination-log"
		d.Spec.Template.Spec.DNSPolicy = corev1.DNSClusterFirst
		setSpecHash(d, desired)
		if mutate != nil {
			mutate(&d.Spec)
		}
		return d
	}
	tests := []struct {
		name string
		obj  *appsv1.Deployment
		want bool
	}{
		{"defaults filled in by the apiserver", stored(nil), false},
		{"an edited image", stored(func(s *appsv1.DeploymentSpec) { s.Template.Spec.Containers[0].Image = "other" }), true},
		// The recorded hash still matches and DeepDerivative accepts a longer list, but
		// an element added by hand is garbage to put back (issue 7).
		{"an extra volume we did not ask for", stored(func(s *appsv1.DeploymentSpec) {
			s.Template.Spec.Volumes = append(s.Template.Spec.Volumes, corev1.Volume{Name: "extra"})
		}), true},
		{"an extra environment variable", stored(func(s *appsv1.DeploymentSpec) {
			c := &s.Template.Spec.Containers[0]
			c.Env = append(c.Env, corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://proxy"})
		}), true},
		{"an annotation added to the pod template (kubectl rollout restart)", stored(func(s *appsv1.DeploymentSpec) {
			s.Template.Annotations["kubectl.kubernetes.io/restartedAt"] = "2026-07-28T12:00:00Z"
		}), false},
		{"a spec written by an older operator", func() *appsv1.Deployment {
			d := stored(nil)
			d.Annotations[specHashAnnotation] = "old"
			return d
		}(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			NewWithT(t).Expect(needsSpecUpdate(tt.obj, desired, tt.obj.Spec)).To(Equal(tt.want))
		})
	}
}

func TestRenderConfigCarriesUpstreamScopes(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	p.Spec.Server.ScopesSupported = []string{"mcp", "tools:write", "tools:admin"}
	p.Spec.Server.UpstreamScopes = []oauthv1alpha1.ScopeUpstreamScopes{
		{Scope: "tools:write", UpstreamScopes: []string{"repo"}},
		{Scope: "tools:admin", UpstreamScopes: []string{"repo", "admin:org"}},
	}
	c := parseRendered(t, p)
	g.Expect(c.UpstreamScopes).To(Equal(map[string][]string{"tools:write": {"repo"}, "tools:admin": {"repo", "admin:org"}}))
	g.Expect(c.DefaultScopes).To(Equal([]string{"mcp"}), "scopes with upstream scopes are stepped up to, not granted by default")

	p.Spec.Server.UpstreamScopes = []oauthv1alpha1.ScopeUpstreamScopes{{Scope: "files", UpstreamScopes: []string{"drive"}}}
	_, err := renderConfig(p)
	g.Expect(err).To(MatchError(ContainSubstring(`spec.server.upstreamScopes.files: "files" is not in scopesSupported`)))
}

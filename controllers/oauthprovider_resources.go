package controllers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// The pure builders of everything an OAuthProvider renders. Each returns the object as
// the operator wants it, without owner references (the reconciler sets those); none
// reads the cluster, so they are unit-tested without envtest.

// renderConfig turns p into the server's configuration. The config is returned even
// when invalid, so the caller can still use what it says (scopes, issuer); the error is
// config.Validate's, with config paths translated to spec paths for the user.
func renderConfig(p *oauthv1alpha1.OAuthProvider) (*config.Config, error) {
	spec := &p.Spec
	c := config.Default()
	c.Issuer = spec.Server.URL
	c.DisplayName = spec.Server.DisplayName
	c.ServiceDocumentation = spec.Server.ServiceDocumentation
	if len(spec.Server.ScopesSupported) > 0 {
		c.ScopesSupported = slices.Clone(spec.Server.ScopesSupported)
		// A client that asks for no scope gets every scope the server offers (the
		// default "mcp" would not be among them), except those that need more of the
		// upstream provider: those are stepped up to, never handed out by default.
		c.DefaultScopes = slices.DeleteFunc(slices.Clone(spec.Server.ScopesSupported), func(s string) bool {
			return slices.ContainsFunc(spec.Server.UpstreamScopes, func(u oauthv1alpha1.ScopeUpstreamScopes) bool { return u.Scope == s })
		})
		if len(c.DefaultScopes) == 0 {
			c.DefaultScopes = slices.Clone(spec.Server.ScopesSupported)
		}
	}
	for _, u := range spec.Server.UpstreamScopes {
		if c.UpstreamScopes == nil {
			c.UpstreamScopes = map[string][]string{}
		}
		c.UpstreamScopes[u.Scope] = slices.Clone(u.UpstreamScopes)
	}
	if spec.Server.CallbackPath != "" {
		c.CallbackPath = spec.Server.CallbackPath
	}
	c.AllowPKCEPlain = spec.Server.AllowPKCEPlain
	if spec.Server.DynamicClientRegistration != nil {
		c.DynamicRegistration.Enabled = *spec.Server.DynamicClientRegistration
	}
	if reg := spec.Server.Registration; reg.IdleTTL != nil {
		c.DynamicRegistration.IdleTTL = config.Duration(reg.IdleTTL.Duration)
	}
	if reg := spec.Server.Registration; reg.MaxPerSource != nil {
		c.DynamicRegistration.MaxPerSource = int(*reg.MaxPerSource)
	}
	if spec.Server.DeviceFlow != nil {
		c.DeviceAuthorization.Enabled = spec.Server.DeviceFlow.Enabled
	}
	c.Upstream = config.Upstream{
		Type:             config.UpstreamType(spec.Type),
		ClientID:         spec.ClientID,
		ClientSecretFile: upstreamDir + "/" + upstreamFile,
		IssuerURL:        spec.IssuerURL,
		AuthorizationURL: spec.AuthorizationURL,
		TokenURL:         spec.TokenURL,
		UserInfoURL:      spec.UserInfoURL,
		APIURL:           spec.APIURL,
		Scopes:           slices.Clone(spec.Scopes),
		UserIDField:      spec.UserIDField,
		// The CRD allows http on other hosts only with this set.
		InsecureAllowHTTP: spec.InsecureAllowHTTP,
	}
	renderTTLs(&c.Tokens, spec.Server.TokenTTLs)
	if spec.Server.AccessTokenFormat != "" {
		c.Tokens.AccessTokenFormat = config.AccessTokenFormat(spec.Server.AccessTokenFormat)
	}
	if w := spec.Server.RefreshReuseWindow; w != nil {
		c.Tokens.RefreshReuseWindow = config.Duration(w.Duration)
	}
	if spec.Access != nil {
		c.Access = renderAccess(*spec.Access)
	}
	if cp := spec.ClientPolicy; cp != nil {
		c.ClientPolicy = config.ClientPolicy{
			MetadataDocumentDomains: slices.Clone(cp.MetadataDocumentDomains),
			RedirectURIPatterns:     slices.Clone(cp.RedirectURIPatterns),
			MaxScopes: config.MaxScopes{
				PreRegistered:    slices.Clone(cp.MaxScopes.PreRegistered),
				Dynamic:          slices.Clone(cp.MaxScopes.Dynamic),
				MetadataDocument: slices.Clone(cp.MaxScopes.MetadataDocument),
			},
			RequireApproval: cp.RequireApproval,
		}
	}
	c.Store = renderStore(p)
	if spec.Server.TLS != nil {
		c.TLS = config.TLS{CertFile: tlsDir + "/" + corev1.TLSCertKey, KeyFile: tlsDir + "/" + corev1.TLSPrivateKeyKey}
	}
	c.Secrets.EncryptionKeyFile = keysDir + "/" + encryptionKeyKey
	// Rendered whatever the token format, so switching to jwt needs no new volume and
	// finds keys already published.
	c.Secrets.SigningKeysFile = signingKeysDir + "/" + signingKeysKey
	c.Secrets.AdminTokenFile = adminDir + "/" + adminTokenKey
	c.ClientsSecret = &config.ClientsSecret{Namespace: p.Namespace, Name: registrySecretName(p.Name), Key: registryKey}
	c.Normalize()
	return c, fieldErrors(c.Validate(), specPath)
}

// renderTTLs copies the lifetimes that are set; the CRD defaults them all, so a zero
// one only comes from an object stored before the defaults existed.
func renderTTLs(t *config.Tokens, ttl oauthv1alpha1.TokenTTLs) {
	set := func(dst *config.Duration, src metav1.Duration) {
		if src.Duration != 0 {
			*dst = config.Duration(src.Duration)
		}
	}
	set(&t.AuthorizationCodeTTL, ttl.AuthorizationCode)
	set(&t.AccessTokenTTL, ttl.AccessToken)
	set(&t.RefreshTokenTTL, ttl.RefreshToken)
	set(&t.ClientRegistrationTTL, ttl.ClientRegistration)
	set(&t.ExternalTokenTTL, ttl.ExternalToken)
}

// renderAccess copies the access rules: the spec and the config have the same shape,
// so the server's validation (and its messages) apply to what the user wrote.
func renderAccess(a oauthv1alpha1.AccessSpec) config.Access {
	out := config.Access{Allow: renderAccessRules(a.Allow), GroupsClaim: a.GroupsClaim}
	for _, m := range a.ScopeMappings {
		out.ScopeMappings = append(out.ScopeMappings, config.ScopeMapping{
			Scopes: slices.Clone(m.Scopes), Members: renderAccessRules(m.Members),
		})
	}
	return out
}

func renderAccessRules(r oauthv1alpha1.AccessRules) config.AccessRules {
	return config.AccessRules{
		Users:               slices.Clone(r.Users),
		Emails:              slices.Clone(r.Emails),
		EmailDomains:        slices.Clone(r.EmailDomains),
		GitHubOrganizations: slices.Clone(r.GitHubOrganizations),
		GitHubTeams:         slices.Clone(r.GitHubTeams),
		GoogleHostedDomains: slices.Clone(r.GoogleHostedDomains),
		Groups:              slices.Clone(r.Groups),
	}
}

func renderStore(p *oauthv1alpha1.OAuthProvider) config.Store {
	r := p.Spec.TokenStore.Redis
	if p.Spec.TokenStore.Type != oauthv1alpha1.TokenStoreRedis || r == nil {
		return config.Store{Type: config.StoreMemory}
	}
	out := &config.Redis{
		Addresses:  slices.Clone(r.Addresses),
		MasterName: r.MasterName,
		Username:   r.Username,
		DB:         int(r.DB),
		KeyPrefix:  r.KeyPrefix,
	}
	if out.KeyPrefix == "" {
		out.KeyPrefix = defaultKeyPrefix(p.Namespace, p.Name)
	}
	if r.PasswordSecretRef != nil {
		out.PasswordFile = redisDir + "/" + redisPassFile
	}
	if r.TLS != nil {
		out.TLS = config.RedisTLS{Enabled: r.TLS.Enabled, InsecureSkipVerify: r.TLS.InsecureSkipVerify}
		if r.TLS.CASecretRef != nil {
			out.TLS.CAFile = redisCADir + "/" + redisCAFile
		}
	}
	return config.Store{Type: config.StoreRedis, Redis: out}
}

// maxKeyPrefix is the longest Redis key prefix the server accepts.
const maxKeyPrefix = 64

// defaultKeyPrefix isolates each provider's keys in a shared Redis: <namespace>.<name>,
// both DNS names and so within the prefix's alphabet. '.' cannot occur in a namespace,
// so distinct providers get distinct prefixes. A pair too long for the server's limit
// is cut and suffixed with a hash of the whole, which keeps it unique.
func defaultKeyPrefix(namespace, name string) string {
	s := namespace + "." + name
	if len(s) <= maxKeyPrefix {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return s[:maxKeyPrefix-9] + "-" + hex.EncodeToString(sum[:4])
}

// specPaths translates the config paths in validation errors into the spec fields the
// user wrote. Longest prefixes first; a path not listed is shown as the config's.
var specPaths = []struct{ config, spec string }{
	{"issuer", "spec.server.url"},
	{"displayName", "spec.server.displayName"},
	{"serviceDocumentation", "spec.server.serviceDocumentation"},
	{"scopesSupported", "spec.server.scopesSupported"},
	{"defaultScopes", "spec.server.scopesSupported"},
	{"callbackPath", "spec.server.callbackPath"},
	{"upstreamScopes", "spec.server.upstreamScopes"},
	{"upstream.clientID", "spec.clientID"},
	{"upstream.issuerURL", "spec.issuerURL"},
	{"upstream.authorizationURL", "spec.authorizationURL"},
	{"upstream.tokenURL", "spec.tokenURL"},
	{"upstream.userInfoURL", "spec.userInfoURL"},
	{"upstream.scopes", "spec.scopes"},
	{"upstream.userIDField", "spec.userIDField"},
	{"upstream.apiURL", "spec.apiURL"},
	{"access", "spec.access"},
	{"clientPolicy", "spec.clientPolicy"},
	{"upstream.type", "spec.type"},
	{"tokens.authorizationCodeTTL", "spec.server.tokenTTLs.authorizationCode"},
	{"tokens.accessTokenTTL", "spec.server.tokenTTLs.accessToken"},
	{"tokens.refreshTokenTTL", "spec.server.tokenTTLs.refreshToken"},
	{"tokens.clientRegistrationTTL", "spec.server.tokenTTLs.clientRegistration"},
	{"tokens.externalTokenTTL", "spec.server.tokenTTLs.externalToken"},
	{"tokens.accessTokenFormat", "spec.server.accessTokenFormat"},
	{"tokens.refreshReuseWindow", "spec.server.refreshReuseWindow"},
	{"dynamicRegistration.idleTTL", "spec.server.registration.idleTTL"},
	{"dynamicRegistration.maxPerSource", "spec.server.registration.maxPerSource"},
	{"store.redis.tls.caFile", "spec.tokenStore.redis.tls.caSecretRef"},
	{"store.redis", "spec.tokenStore.redis"},
	{"store", "spec.tokenStore"},
}

// fieldErrors rewrites the field of each *config.FieldError in err with rename and
// joins the problems on one line, as a condition message wants.
func fieldErrors(err error, rename func(string) string) error {
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	msgs := make([]string, 0, len(list))
	for _, e := range list {
		var fe *config.FieldError
		if errors.As(e, &fe) {
			msgs = append(msgs, rename(fe.Field)+": "+fe.Detail)
		} else {
			msgs = append(msgs, e.Error())
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

func specPath(field string) string {
	for _, m := range specPaths {
		if rest, ok := strings.CutPrefix(field, m.config); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
			return m.spec + rest
		}
	}
	return "config " + field
}

// secretInput is one Secret the server's pod mounts, and the keys of it that it uses.
type secretInput struct {
	// volume is the pod volume, dir where it is mounted.
	volume, dir string
	// name is the Secret's name.
	name string
	// items maps each Secret key used to the file name it is mounted as.
	items []corev1.KeyToPath
}

// referencedSecrets are the user's Secrets p mounts, in a fixed order. The keys and
// registry Secrets are the operator's own and are not listed.
func referencedSecrets(p *oauthv1alpha1.OAuthProvider) []secretInput {
	in := []secretInput{{
		volume: "upstream", dir: upstreamDir, name: p.Spec.ClientSecretRef.Name,
		items: []corev1.KeyToPath{{Key: p.Spec.ClientSecretRef.Key, Path: upstreamFile}},
	}}
	if r := p.Spec.TokenStore.Redis; p.Spec.TokenStore.Type == oauthv1alpha1.TokenStoreRedis && r != nil {
		if ref := r.PasswordSecretRef; ref != nil {
			in = append(in, secretInput{volume: "redis-password", dir: redisDir, name: ref.Name,
				items: []corev1.KeyToPath{{Key: ref.Key, Path: redisPassFile}}})
		}
		if r.TLS != nil && r.TLS.CASecretRef != nil {
			ref := r.TLS.CASecretRef
			in = append(in, secretInput{volume: "redis-ca", dir: redisCADir, name: ref.Name,
				items: []corev1.KeyToPath{{Key: ref.Key, Path: redisCAFile}}})
		}
	}
	if t := p.Spec.Server.TLS; t != nil {
		in = append(in, secretInput{volume: "tls", dir: tlsDir, name: t.SecretName, items: []corev1.KeyToPath{
			{Key: corev1.TLSCertKey, Path: corev1.TLSCertKey},
			{Key: corev1.TLSPrivateKeyKey, Path: corev1.TLSPrivateKeyKey},
		}})
	}
	return in
}

// referencedSecretNames is what the provider index holds: a Secret with one of these
// names re-enqueues p when it changes.
func referencedSecretNames(p *oauthv1alpha1.OAuthProvider) []string {
	var names []string
	for _, s := range referencedSecrets(p) {
		if !slices.Contains(names, s.name) {
			names = append(names, s.name)
		}
	}
	return names
}

// inputsHash is the pod template's inputs hash: the rendered config, then each mounted
// Secret's name and the values of the keys the pod uses, length-prefixed so no two
// inputs hash alike. The registry Secret is not part of it: the server watches it live.
func inputsHash(configYAML []byte, secrets []secretInput, data map[string]map[string][]byte) string {
	h := sha256.New()
	write := func(b []byte) {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	write(configYAML)
	for _, s := range secrets {
		write([]byte(s.name))
		for _, it := range s.items {
			write([]byte(it.Key))
			write(data[s.name][it.Key])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// keysSecretInput is the operator's keys Secret as a pod input.
func keysSecretInput(p *oauthv1alpha1.OAuthProvider) secretInput {
	return secretInput{volume: "keys", dir: keysDir, name: keysSecretName(p),
		items: []corev1.KeyToPath{{Key: encryptionKeyKey, Path: encryptionKeyKey}}}
}

// signingKeysSecretInput is the signing keys Secret as a pod input. It is mounted but
// never hashed: the server follows the file, and a rotation must not roll the pods.
func signingKeysSecretInput(p *oauthv1alpha1.OAuthProvider) secretInput {
	return secretInput{volume: "signing-keys", dir: signingKeysDir, name: signingKeysSecretName(p),
		items: []corev1.KeyToPath{{Key: signingKeysKey, Path: signingKeysKey}}}
}

// adminSecretInput is the admin token Secret as a pod input.
func adminSecretInput(p *oauthv1alpha1.OAuthProvider) secretInput {
	return secretInput{volume: "admin", dir: adminDir, name: adminSecretName(p),
		items: []corev1.KeyToPath{{Key: adminTokenKey, Path: adminTokenKey}}}
}

// hashedSecrets are the Secrets whose values are in the inputs hash, in its order:
// the operator's own (but the signing keys), then the user's.
func hashedSecrets(p *oauthv1alpha1.OAuthProvider) []secretInput {
	return append([]secretInput{keysSecretInput(p), adminSecretInput(p)}, referencedSecrets(p)...)
}

// newEncryptionKey returns base64 of 32 bytes from crypto/rand, what
// secrets.encryptionKeyFile expects.
func newEncryptionKey() ([]byte, error) {
	key := make([]byte, config.MinEncryptionKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate encryption key: %w", err)
	}
	return []byte(base64.StdEncoding.EncodeToString(key)), nil
}

// validEncryptionKey reports whether an existing key is one the server accepts, so a
// good key is kept and only a missing or broken one replaced.
func validEncryptionKey(b []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	return err == nil && len(key) >= config.MinEncryptionKeyBytes
}

func objectMeta(p *oauthv1alpha1.OAuthProvider, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: p.Namespace, Labels: providerLabels(p)}
}

func buildServiceAccount(p *oauthv1alpha1.OAuthProvider) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: objectMeta(p, serverName(p))}
}

// buildRole lets the server read its registry Secret and nothing else. list and watch
// are authorized against resourceNames because the server's watch carries a
// metadata.name field selector.
func buildRole(p *oauthv1alpha1.OAuthProvider) *rbacv1.Role {
	return &rbacv1.Role{
		ObjectMeta: objectMeta(p, serverName(p)),
		Rules: []rbacv1.PolicyRule{{
			APIGroups:     []string{""},
			Resources:     []string{"secrets"},
			ResourceNames: []string{registrySecretName(p.Name)},
			Verbs:         []string{"get", "list", "watch"},
		}},
	}
}

func buildRoleBinding(p *oauthv1alpha1.OAuthProvider) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: objectMeta(p, serverName(p)),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: serverName(p)},
		Subjects: []rbacv1.Subject{{
			Kind: rbacv1.ServiceAccountKind, Name: serverName(p), Namespace: p.Namespace,
		}},
	}
}

func buildConfigMap(p *oauthv1alpha1.OAuthProvider, configYAML []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: objectMeta(p, configMapName(p)),
		Data:       map[string]string{configKey: string(configYAML)},
	}
}

func buildKeysSecret(p *oauthv1alpha1.OAuthProvider, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(p, keysSecretName(p)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{encryptionKeyKey: key},
	}
}

func buildRegistrySecret(p *oauthv1alpha1.OAuthProvider, clientsYAML []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(p, registrySecretName(p.Name)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{registryKey: clientsYAML},
	}
}

// replicas is the server's desired replica count.
func replicas(p *oauthv1alpha1.OAuthProvider) int32 {
	if r := p.Spec.Server.Replicas; r != nil {
		return *r
	}
	return 1
}

// portName is "https" when the server serves TLS itself, else "http"; the probes and
// the Service refer to the port by it.
func portName(p *oauthv1alpha1.OAuthProvider) string {
	if p.Spec.Server.TLS != nil {
		return "https"
	}
	return "http"
}

// buildDeployment is the server's Deployment. image is the operator's default, used
// when the spec names none; hash is the inputs hash for the pod template.
func buildDeployment(p *oauthv1alpha1.OAuthProvider, image, hash string) *appsv1.Deployment {
	if p.Spec.Server.Image != "" {
		image = p.Spec.Server.Image
	}
	podLabels := providerLabels(p)
	d := &appsv1.Deployment{
		ObjectMeta: objectMeta(p, serverName(p)),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas(p)),
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(p)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      podLabels,
					Annotations: map[string]string{inputsHashAnnotation: hash},
				},
				Spec: buildPodSpec(p, image),
			},
		},
	}
	return d
}

func buildPodSpec(p *oauthv1alpha1.OAuthProvider, image string) corev1.PodSpec {
	volumes, mounts := buildVolumes(p)
	return corev1.PodSpec{
		ServiceAccountName: serverName(p),
		// The server watches its registry Secret through the API, so it needs a token.
		AutomountServiceAccountToken: ptr.To(true),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To(serverUID),
			RunAsGroup:     ptr.To(serverUID),
			FSGroup:        ptr.To(serverUID),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name:    "authserver",
			Image:   image,
			Command: []string{serverBinaryPath},
			Args:    []string{"--config", configPath},
			Ports:   []corev1.ContainerPort{{Name: portName(p), ContainerPort: serverPort, Protocol: corev1.ProtocolTCP}},
			Env: append([]corev1.EnvVar{{
				Name:      "POD_NAMESPACE",
				ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}},
			}}, memoryLimitEnv(p.Spec.Server.Resources)...),
			LivenessProbe:   probe(p, config.PathHealthz, 10),
			ReadinessProbe:  probe(p, config.PathReadyz, 5),
			Resources:       *p.Spec.Server.Resources.DeepCopy(),
			VolumeMounts:    mounts,
			SecurityContext: containerSecurityContext(),
		}},
		Volumes: volumes,
	}
}

// memoryLimitEnv tells the Go runtime the container's memory limit, when there is one:
// GOMEMLIMIT at 90% of it, so that the collector works harder as the heap nears the
// limit instead of the kernel killing the pod. The server collects less often with
// the Redis store (GOGC=200, see cmd/authserver), which this keeps safe under a tight
// limit.
func memoryLimitEnv(r corev1.ResourceRequirements) []corev1.EnvVar {
	limit, ok := r.Limits[corev1.ResourceMemory]
	if !ok || limit.Value() <= 0 {
		return nil
	}
	return []corev1.EnvVar{{Name: "GOMEMLIMIT", Value: strconv.FormatInt(limit.Value()/10*9, 10)}}
}

func containerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		ReadOnlyRootFilesystem:   ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func probe(p *oauthv1alpha1.OAuthProvider, path string, period int32) *corev1.Probe {
	scheme := corev1.URISchemeHTTP
	if p.Spec.Server.TLS != nil {
		scheme = corev1.URISchemeHTTPS
	}
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(portName(p)), Scheme: scheme,
		}},
		// All set to the apiserver's defaults where it has one: a zero int would read
		// as a difference from the stored object (see apply.go).
		TimeoutSeconds:   1,
		PeriodSeconds:    period,
		SuccessThreshold: 1,
		FailureThreshold: 3,
	}
}

// tmpSize bounds the scratch directory; the server writes nothing large.
var tmpSize = resource.MustParse("16Mi")

// secretFileMode lets the server's group (fsGroup) read mounted Secrets and nobody else.
const secretFileMode int32 = 0o440

// buildVolumes mounts the config, the operator's Secrets and every referenced one, each by
// reference with only the keys the server reads, and a small /tmp because the root
// filesystem is read-only.
func buildVolumes(p *oauthv1alpha1.OAuthProvider) ([]corev1.Volume, []corev1.VolumeMount) {
	volumes := []corev1.Volume{{
		Name: "config",
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: configMapName(p)},
		}},
	}}
	mounts := []corev1.VolumeMount{{Name: "config", MountPath: configDir, ReadOnly: true}}
	secrets := append([]secretInput{keysSecretInput(p), signingKeysSecretInput(p), adminSecretInput(p)}, referencedSecrets(p)...)
	for _, s := range secrets {
		volumes = append(volumes, corev1.Volume{
			Name: s.volume,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: s.name, Items: s.items, DefaultMode: ptr.To(secretFileMode),
			}},
		})
		mounts = append(mounts, corev1.VolumeMount{Name: s.volume, MountPath: s.dir, ReadOnly: true})
	}
	volumes = append(volumes, corev1.Volume{
		Name:         "tmp",
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(tmpSize)}},
	})
	mounts = append(mounts, corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"})
	return volumes, mounts
}

// buildService exposes the server on port 80, or 443 when it serves TLS.
func buildService(p *oauthv1alpha1.OAuthProvider) *corev1.Service {
	port := int32(80)
	if p.Spec.Server.TLS != nil {
		port = 443
	}
	return &corev1.Service{
		ObjectMeta: objectMeta(p, serverName(p)),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selectorLabels(p),
			Ports: []corev1.ServicePort{{
				Name: portName(p), Port: port, TargetPort: intstr.FromString(portName(p)), Protocol: corev1.ProtocolTCP,
			}},
		},
	}
}

// buildPodDisruptionBudget keeps all but one replica up through voluntary disruptions;
// nil when there is a single replica, where a budget would block node drains.
func buildPodDisruptionBudget(p *oauthv1alpha1.OAuthProvider) *policyv1.PodDisruptionBudget {
	if replicas(p) <= 1 {
		return nil
	}
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(p, serverName(p)),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: selectorLabels(p)},
		},
	}
}

// specHash is a hash of a desired spec, recorded on the object (specHashAnnotation).
func specHash(spec any) string {
	b, err := json.Marshal(spec)
	if err != nil { // cannot happen for API types; a constant still makes progress
		return "unhashable"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

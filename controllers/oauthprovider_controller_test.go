package controllers

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

const upstreamSecretValue = "upstream-s3cret-value"

var _ = Describe("The OAuthProvider reconciler", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("renders every object of the server, owned by the provider", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		p := githubProvider(ns, "gh")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())

		d := &appsv1.Deployment{}
		Eventually(exists(d, ns, "gh-authserver")).Should(Succeed())

		By("the identity: a ServiceAccount allowed to read its registry Secret only")
		sa := get(&corev1.ServiceAccount{}, ns, "gh-authserver")
		role := get(&rbacv1.Role{}, ns, "gh-authserver").(*rbacv1.Role)
		Expect(role.Rules).To(Equal([]rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: []string{"gh-authserver-clients"}, Verbs: []string{"get", "list", "watch"},
		}}))
		rb := get(&rbacv1.RoleBinding{}, ns, "gh-authserver").(*rbacv1.RoleBinding)
		Expect(rb.Subjects).To(ConsistOf(HaveField("Name", "gh-authserver")))

		By("the config: parsed and validated as the server will, with no secret value in it")
		cm := get(&corev1.ConfigMap{}, ns, "gh-authserver-config").(*corev1.ConfigMap)
		Expect(cm.Data[configKey]).NotTo(ContainSubstring(upstreamSecretValue))
		cfg, err := config.Parse([]byte(cm.Data[configKey]), nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Issuer).To(Equal("https://auth.example.com"))
		Expect(cfg.Upstream.ClientSecretFile).To(Equal("/etc/mcpauth/upstream/client-secret"))
		Expect(cfg.ClientsSecret).To(Equal(&config.ClientsSecret{Namespace: ns, Name: "gh-authserver-clients", Key: "clients.yaml"}))

		By("the keys and the (empty) registry")
		keys := get(&corev1.Secret{}, ns, "gh-authserver-keys").(*corev1.Secret)
		Expect(validEncryptionKey(keys.Data[encryptionKeyKey])).To(BeTrue())
		registry := get(&corev1.Secret{}, ns, "gh-authserver-clients").(*corev1.Secret)
		Expect(config.ParseClients(registry.Data[registryKey])).To(BeEmpty())

		By("the Deployment: default image, the config, the upstream secret by reference, locked down")
		pod := d.Spec.Template.Spec
		Expect(pod.Containers).To(HaveLen(1))
		c := pod.Containers[0]
		Expect(c.Image).To(Equal(testImage))
		Expect(c.Args).To(Equal([]string{"--config", "/etc/mcpauth/config/config.yaml"}))
		Expect(pod.Volumes).To(ContainElement(And(HaveField("Name", "upstream"), HaveField("Secret.SecretName", "github-oauth"))))
		Expect(pod.ServiceAccountName).To(Equal("gh-authserver"))
		Expect(pod.SecurityContext.RunAsNonRoot).To(Equal(ptr.To(true)))
		Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(Equal(ptr.To(true)))
		Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
		Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
		Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
		Expect(d.Spec.Template.Annotations[inputsHashAnnotation]).To(HaveLen(64))

		By("the Service, and no budget for one replica")
		svc := get(&corev1.Service{}, ns, "gh-authserver").(*corev1.Service)
		Expect(svc.Spec.Ports).To(ConsistOf(And(HaveField("Port", int32(80)), HaveField("Name", "http"))))
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gh-authserver"}, &policyv1.PodDisruptionBudget{}))).To(BeTrue())

		By("owner references on everything, so deleting the provider deletes them")
		get(p, ns, "gh")
		for _, obj := range []client.Object{sa, role, rb, cm, keys, registry, d, svc} {
			Expect(obj).To(controlledBy(p), "%T %s", obj, obj.GetName())
		}
	})

	It("becomes Ready when its Deployment is available", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		p := githubProvider(ns, "gh")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable))

		makeAvailable(ns, "gh")
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonReady))
		get(p, ns, "gh")
		Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		Expect(p.Status.URL).To(Equal("https://auth.example.com"))
		Expect(p.Status.ReadyReplicas).To(Equal(int32(1)))
		Expect(p.Status.Conditions).To(ContainElements(
			haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentAvailable),
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonRolloutComplete),
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonAsExpected),
		))
	})

	It("reports a missing Secret by name, and recovers when it is created", func() {
		p := githubProvider(ns, "gh")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(And(
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonSecretNotFound),
			HaveField("Message", ContainSubstring("github-oauth"))))
		Expect(condition(p, oauthv1alpha1.ConditionDegraded)()).To(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonSecretNotFound))
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gh-authserver"}, &appsv1.Deployment{}))).
			To(BeTrue(), "pods that cannot mount their Secret are not created")
		Eventually(func() []eventsv1.Event {
			var list eventsv1.EventList
			Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			return list.Items
		}).Should(ContainElement(And(HaveField("Type", corev1.EventTypeWarning), HaveField("Reason", oauthv1alpha1.ReasonSecretNotFound),
			HaveField("Regarding.Name", "gh"))))

		By("a Secret without the key")
		s := createSecret(ns, "github-oauth", map[string]string{"other": "x"})
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonSecretKeyNotFound))

		By("the key added")
		s.StringData = map[string]string{"client-secret": upstreamSecretValue}
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(exists(&appsv1.Deployment{}, ns, "gh-authserver")).Should(Succeed())
		makeAvailable(ns, "gh")
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonReady))
	})

	It("rolls the pods when a referenced Secret rotates, and keeps its encryption key", func() {
		s := createSecret(ns, "github-oauth", map[string]string{"client-secret": "v1"})
		p := githubProvider(ns, "gh")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(podHash(ns, "gh")).ShouldNot(BeEmpty())
		before := podHash(ns, "gh")()
		key := get(&corev1.Secret{}, ns, "gh-authserver-keys").(*corev1.Secret).Data[encryptionKeyKey]

		s.StringData = map[string]string{"client-secret": "v2"}
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(podHash(ns, "gh")).ShouldNot(Equal(before))

		By("a spec change and forced passes leave the key alone")
		get(p, ns, "gh")
		p.Spec.Server.DisplayName = "Renamed"
		Expect(k8sClient.Update(ctx, p)).To(Succeed())
		touch(p, "1")
		Eventually(func() string {
			cm := &corev1.ConfigMap{}
			_ = k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gh-authserver-config"}, cm)
			return cm.Data[configKey]
		}).Should(ContainSubstring("Renamed"))
		Expect(get(&corev1.Secret{}, ns, "gh-authserver-keys").(*corev1.Secret).Data[encryptionKeyKey]).To(Equal(key))
	})

	It("serves TLS, mounts the Redis password, and keeps a budget only for several replicas", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		createSecret(ns, "redis", map[string]string{"password": "redis-pass"})
		tls := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "auth-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
			StringData: map[string]string{"tls.crt": "cert", "tls.key": "key"}}
		Expect(k8sClient.Create(ctx, tls)).To(Succeed())
		p := githubProvider(ns, "gh")
		p.Spec.Server.Replicas = ptr.To[int32](2)
		p.Spec.Server.TLS = &oauthv1alpha1.ServerTLS{SecretName: "auth-tls"}
		p.Spec.TokenStore = oauthv1alpha1.TokenStoreSpec{Type: oauthv1alpha1.TokenStoreRedis, Redis: &oauthv1alpha1.RedisSpec{
			Addresses: []string{"redis:6379"}, PasswordSecretRef: &oauthv1alpha1.SecretKeyReference{Name: "redis", Key: "password"},
		}}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())

		pdb := &policyv1.PodDisruptionBudget{}
		Eventually(exists(pdb, ns, "gh-authserver")).Should(Succeed())
		Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))
		svc := get(&corev1.Service{}, ns, "gh-authserver").(*corev1.Service)
		Expect(svc.Spec.Ports).To(ConsistOf(And(HaveField("Port", int32(443)), HaveField("Name", "https"))))
		d := get(&appsv1.Deployment{}, ns, "gh-authserver").(*appsv1.Deployment)
		Expect(d.Spec.Template.Spec.Volumes).To(ContainElements(
			HaveField("Secret.SecretName", "auth-tls"), HaveField("Secret.SecretName", "redis")))
		cfg, err := config.Parse([]byte(get(&corev1.ConfigMap{}, ns, "gh-authserver-config").(*corev1.ConfigMap).Data[configKey]), nil)
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Store.Redis.KeyPrefix).To(Equal(ns + ".gh"))
		Expect(cfg.TLS.CertFile).To(Equal("/etc/mcpauth/tls/tls.crt"))

		By("rotating the certificate rolls the pods too")
		before := podHash(ns, "gh")()
		tls.StringData = map[string]string{"tls.crt": "cert2"}
		Expect(k8sClient.Update(ctx, tls)).To(Succeed())
		Eventually(podHash(ns, "gh")).ShouldNot(Equal(before))

		By("back to one replica, the budget goes")
		get(p, ns, "gh")
		p.Spec.Server.Replicas = ptr.To[int32](1)
		Expect(k8sClient.Update(ctx, p)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gh-authserver"}, &policyv1.PodDisruptionBudget{}))
		}).Should(BeTrue())
	})

	It("reports a spec the server would refuse as InvalidSpec, naming the field", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		p := githubProvider(ns, "gh")
		// GitHub is not an OpenID Connect issuer; CEL lets the field through, the
		// server's config does not.
		p.Spec.IssuerURL = "https://github.com"
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(And(
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidSpec),
			HaveField("Message", ContainSubstring("spec.issuerURL: not allowed"))))
		get(p, ns, "gh")
		Expect(p.Status.ObservedGeneration).To(Equal(p.Generation), "the condition describes this generation")
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gh-authserver"}, &appsv1.Deployment{}))).To(BeTrue())

		By("fixing the spec")
		p.Spec.IssuerURL = ""
		Expect(k8sClient.Update(ctx, p)).To(Succeed())
		Eventually(exists(&appsv1.Deployment{}, ns, "gh-authserver")).Should(Succeed())
	})

	It("refuses a name too long for the server's Service", func() {
		p := githubProvider(ns, strings.Repeat("a", 53))
		// A rule on the object's own name can name no field (the apiserver refuses a
		// fieldPath into metadata), so only the message says what is wrong.
		err := k8sClient.Create(ctx, p)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
		Expect(err.Error()).To(ContainSubstring("the name must be a DNS label of at most 52 characters"))
	})
})

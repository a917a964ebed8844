package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// namedClient is an MCPClient of provider gh named name.
func namedClient(ns, name string, method oauthv1alpha1.TokenEndpointAuthMethod) *oauthv1alpha1.MCPClient {
	c := validClient(ns)
	c.GenerateName, c.Name = "", name
	c.Spec.ProviderRef.Name = "gh"
	c.Spec.TokenEndpointAuthMethod = method
	return c
}

// registry returns a function for Eventually that reads provider gh's registry.
func registry(ns string) func() []config.Client {
	return func() []config.Client {
		s := &corev1.Secret{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gh-authserver-clients"}, s); err != nil {
			return nil
		}
		clients, err := config.ParseClients(s.Data[registryKey])
		Expect(err).NotTo(HaveOccurred())
		return clients
	}
}

var _ = Describe("The MCPClient reconciler", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("waits for its provider, then writes its credentials and is registered", func() {
		c := namedClient(ns, "agent", oauthv1alpha1.AuthMethodClientSecretBasic)
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		Eventually(condition(c, oauthv1alpha1.ConditionReady)).Should(And(
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonProviderNotFound),
			HaveField("Message", ContainSubstring("OAuthProvider gh not found"))))
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "agent-credentials"}, &corev1.Secret{}))).To(BeTrue())

		By("the provider appears")
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		p := githubProvider(ns, "gh")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		creds := &corev1.Secret{}
		Eventually(exists(creds, ns, "agent-credentials")).Should(Succeed())
		get(c, ns, "agent")
		Expect(creds).To(controlledBy(c))
		id, secret := string(creds.Data[credClientID]), string(creds.Data[credClientSecret])
		Expect(id).To(HavePrefix("mcp_"))
		Expect(secret).To(HaveLen(43))
		Expect(string(creds.Data[credIssuerURL])).To(Equal("https://auth.example.com"))
		Expect(string(creds.Data[credMetadataURL])).To(Equal("https://auth.example.com/.well-known/oauth-authorization-server"))

		By("the registry lists it with its secret's hash, never the secret")
		Eventually(registry(ns)).Should(ConsistOf(And(
			HaveField("ClientID", id),
			HaveField("SecretHash", config.HashClientSecret(secret)),
			HaveField("TokenEndpointAuthMethod", "client_secret_basic"))))
		regSecret := get(&corev1.Secret{}, ns, "gh-authserver-clients").(*corev1.Secret)
		Expect(string(regSecret.Data[registryKey])).NotTo(ContainSubstring(secret))
		Eventually(condition(c, oauthv1alpha1.ConditionRegistered)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered))
		Eventually(condition(c, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonProviderNotReady))

		By("the server becomes available")
		makeAvailable(ns, "gh")
		Eventually(condition(c, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonReady))
		get(c, ns, "agent")
		Expect(c.Status.ClientID).To(Equal(id))
		Expect(c.Status.SecretName).To(Equal("agent-credentials"))
		Expect(c.Status.ObservedGeneration).To(Equal(c.Generation))
		Eventually(func() int32 { return get(p, ns, "gh").(*oauthv1alpha1.OAuthProvider).Status.RegisteredClients }).Should(Equal(int32(1)))
	})

	It("keeps a public client's ID, and its deletion removes the registration", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		Expect(k8sClient.Create(ctx, githubProvider(ns, "gh"))).To(Succeed())
		c := namedClient(ns, "ide", oauthv1alpha1.AuthMethodNone)
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		Eventually(condition(c, oauthv1alpha1.ConditionRegistered)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered))
		creds := get(&corev1.Secret{}, ns, "ide-credentials").(*corev1.Secret)
		Expect(creds.Data).NotTo(HaveKey(credClientSecret))
		id := string(creds.Data[credClientID])
		Expect(registry(ns)()).To(ConsistOf(And(HaveField("ClientID", id), HaveField("SecretHash", ""))))

		By("a spec change and a forced pass keep the client ID")
		// The reconciler writes the client's status meanwhile: retry on a conflict.
		Eventually(func() error {
			get(c, ns, "ide")
			c.Spec.RedirectURIs = append(c.Spec.RedirectURIs, "http://localhost/callback")
			return k8sClient.Update(ctx, c)
		}).Should(Succeed())
		touch(c, "1")
		Eventually(registry(ns)).Should(ConsistOf(HaveField("RedirectURIs", ContainElement("http://localhost/callback"))))
		Expect(registry(ns)()[0].ClientID).To(Equal(id))
		Eventually(condition(c, oauthv1alpha1.ConditionRegistered)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered))
		Expect(get(&oauthv1alpha1.MCPClient{}, ns, "ide").(*oauthv1alpha1.MCPClient).Status.ClientID).To(Equal(id))

		By("deleting the client")
		Expect(k8sClient.Delete(ctx, c)).To(Succeed())
		Eventually(registry(ns)).Should(BeEmpty())
	})

	It("reports a registration the server would refuse, and leaves it out of the registry", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		Expect(k8sClient.Create(ctx, githubProvider(ns, "gh"))).To(Succeed())
		good := namedClient(ns, "good", oauthv1alpha1.AuthMethodNone)
		Expect(k8sClient.Create(ctx, good)).To(Succeed())
		bad := namedClient(ns, "bad", oauthv1alpha1.AuthMethodNone)
		bad.Spec.Scopes = []string{"admin"}
		Expect(k8sClient.Create(ctx, bad)).To(Succeed())
		Eventually(condition(bad, oauthv1alpha1.ConditionRegistered)).Should(And(
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidSpec),
			HaveField("Message", ContainSubstring(`spec.scopes[0]: "admin" is not in scopesSupported`))))
		Eventually(condition(good, oauthv1alpha1.ConditionRegistered)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered))
		Expect(registry(ns)()).To(HaveLen(1))
	})

	It("leaves alone a Secret of the same name that it does not own", func() {
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		Expect(k8sClient.Create(ctx, githubProvider(ns, "gh"))).To(Succeed())
		createSecret(ns, "taken", map[string]string{"keep": "me"})
		c := namedClient(ns, "ide", oauthv1alpha1.AuthMethodNone)
		c.Spec.SecretName = "taken"
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		Eventually(condition(c, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonSecretConflict))
		Expect(get(&corev1.Secret{}, ns, "taken").(*corev1.Secret).Data).To(Equal(map[string][]byte{"keep": []byte("me")}))
		Expect(registry(ns)()).To(BeEmpty())
	})
})

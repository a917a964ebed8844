package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// registryApprovalsOf returns a function for Eventually that reads the approvals of
// provider gh's registry.
func registryApprovalsOf(ns string) func() []config.Approval {
	return func() []config.Approval {
		s := &corev1.Secret{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gh-authserver-clients"}, s); err != nil {
			return nil
		}
		f, err := config.ParseClientsFile(s.Data[registryKey])
		Expect(err).NotTo(HaveOccurred())
		return f.Approvals
	}
}

// approvingClient is an MCPClient of provider gh that approves id.
func approvingClient(ns, name, id string) *oauthv1alpha1.MCPClient {
	c := namedClient(ns, name, oauthv1alpha1.AuthMethodNone)
	c.Spec.RedirectURIs = nil
	c.Spec.ApproveClientID = id
	return c
}

var _ = Describe("An MCPClient with approveClientID", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		p := githubProvider(ns, "gh")
		p.Spec.ClientPolicy = &oauthv1alpha1.ClientPolicySpec{RequireApproval: true, MetadataDocumentDomains: []string{"*.example.org"}}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
	})

	It("approves the client through the registry Secret, with no credentials Secret, until it is deleted", func() {
		const id = "https://tools.example.org/client.json"
		c := approvingClient(ns, "tools", id)
		Expect(k8sClient.Create(ctx, c)).To(Succeed())

		Eventually(registryApprovalsOf(ns)).Should(ConsistOf(config.Approval{ClientID: id, ApprovedBy: "MCPClient " + ns + "/tools"}))
		Expect(registry(ns)()).To(BeEmpty(), "an approval registers no client")
		Eventually(condition(c, oauthv1alpha1.ConditionRegistered)).Should(And(
			haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonApproved),
			HaveField("Message", ContainSubstring(id))))
		get(c, ns, "tools")
		Expect(c.Status.ClientID).To(Equal(id))
		Expect(c.Status.SecretName).To(BeEmpty())
		var secrets corev1.SecretList
		Expect(k8sClient.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabels{labelInstance: "tools"})).To(Succeed())
		Expect(secrets.Items).To(BeEmpty(), "no credentials Secret for an approval")

		makeAvailable(ns, "gh")
		Eventually(condition(c, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonReady))

		By("a registered client beside it keeps its own entry")
		ide := namedClient(ns, "ide", oauthv1alpha1.AuthMethodNone)
		Expect(k8sClient.Create(ctx, ide)).To(Succeed())
		Eventually(registry(ns)).Should(HaveLen(1))
		Expect(registryApprovalsOf(ns)()).To(HaveLen(1))

		By("deleting the MCPClient withdraws the approval")
		Expect(k8sClient.Delete(ctx, c)).To(Succeed())
		Eventually(registryApprovalsOf(ns)).Should(BeEmpty())
		Expect(registry(ns)()).To(HaveLen(1))
	})

	It("reports an approval the server would not honour, and leaves it out of the registry", func() {
		offDomain := approvingClient(ns, "elsewhere", "https://tools.evil.test/client.json")
		Expect(k8sClient.Create(ctx, offDomain)).To(Succeed())
		Eventually(condition(offDomain, oauthv1alpha1.ConditionReady)).Should(And(
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidSpec),
			HaveField("Message", ContainSubstring("not in the provider's spec.clientPolicy.metadataDocumentDomains"))))

		By("an approval of a client the operator registers itself")
		ide := namedClient(ns, "ide", oauthv1alpha1.AuthMethodNone)
		Expect(k8sClient.Create(ctx, ide)).To(Succeed())
		Eventually(condition(ide, oauthv1alpha1.ConditionRegistered)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered))
		get(ide, ns, "ide")
		self := approvingClient(ns, "self", ide.Status.ClientID)
		Expect(k8sClient.Create(ctx, self)).To(Succeed())
		Eventually(condition(self, oauthv1alpha1.ConditionRegistered)).Should(And(
			haveCondition(metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidSpec),
			HaveField("Message", ContainSubstring("needs no approval"))))
		Consistently(registryApprovalsOf(ns), "300ms").Should(BeEmpty())
		Expect(registry(ns)()).To(HaveLen(1))
	})
})

package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

var _ = Describe("The steady state", func() {
	It("makes no write when unchanged objects are reconciled again", func() {
		ns := newNamespace()
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		createSecret(ns, "redis", map[string]string{"password": "p"})
		p := githubProvider(ns, "gh")
		// Every optional part rendered: two replicas (a budget), Redis with a password,
		// a handled signing key rotation request.
		p.Annotations = map[string]string{oauthv1alpha1.RotateSigningKeyAnnotation: "1"}
		p.Spec.Server.Replicas = ptr.To[int32](2)
		p.Spec.TokenStore = oauthv1alpha1.TokenStoreSpec{Type: oauthv1alpha1.TokenStoreRedis, Redis: &oauthv1alpha1.RedisSpec{
			Addresses: []string{"redis:6379"}, PasswordSecretRef: &oauthv1alpha1.SecretKeyReference{Name: "redis", Key: "password"},
		}}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		public := namedClient(ns, "ide", oauthv1alpha1.AuthMethodNone)
		confidential := namedClient(ns, "agent", oauthv1alpha1.AuthMethodClientSecretPost)
		Expect(k8sClient.Create(ctx, public)).To(Succeed())
		Expect(k8sClient.Create(ctx, confidential)).To(Succeed())
		makeAvailable(ns, "gh")
		Eventually(condition(p, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonReady))
		Eventually(condition(public, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonReady))
		Eventually(condition(confidential, oauthv1alpha1.ConditionReady)).Should(haveCondition(metav1.ConditionTrue, oauthv1alpha1.ReasonReady))

		By("a signing key rotation on request, which must settle too")
		annotate(p, oauthv1alpha1.RotateSigningKeyAnnotation, "2")
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(2))
		// The requested key signs a minute on (requestedRotationSlack); the status
		// follows then, and only then is all quiet.
		testClock.Step(requestedRotationSlack)
		touch(p, "requested-key-signs")
		Eventually(signingStatus(p)).Should(HaveField("ActiveKeyID", signingKeys(ns, "gh")()[1].KeyID))

		By("waiting for the writes to settle")
		last := -1
		Eventually(func() bool {
			n := len(calls.Writes(ns))
			same := n == last
			last = n
			return same
		}).WithPolling(time.Second).Should(BeTrue())
		before := calls.Writes(ns)

		By("forcing a pass over every object")
		reads := calls.Reads(ns)
		touch(p, "resync")
		touch(public, "resync")
		touch(confidential, "resync")
		Eventually(func() int { return calls.Reads(ns) }).Should(BeNumerically(">=", reads+3))
		Consistently(func() []string { return calls.Writes(ns)[len(before):] }, 2*time.Second, 100*time.Millisecond).Should(BeEmpty())
	})
})

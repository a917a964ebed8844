package controllers

import (
	"crypto/rsa"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

var _ = Describe("Signing keys and the admin token", func() {
	var (
		ns string
		p  *oauthv1alpha1.OAuthProvider
	)
	BeforeEach(func() {
		ns = newNamespace()
		createSecret(ns, "github-oauth", map[string]string{"client-secret": upstreamSecretValue})
		p = githubProvider(ns, "gh")
	})

	It("generates a signing key and an admin token, mounts both, and reports the active key", func() {
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(1))
		k := signingKeys(ns, "gh")()[0]
		Expect(k.Algorithm).To(Equal(config.SigningES256))
		Expect(k.ActivateAt).To(BeTemporally("~", testClock.Now(), 10*time.Second))
		Expect(k.PublishUntil.IsZero()).To(BeTrue())

		By("status: the active kid, the next rotation 720h on, what is published; no key material")
		Eventually(signingStatus(p)).Should(And(
			HaveField("ActiveKeyID", k.KeyID),
			HaveField("PublishedKeyIDs", []string{k.KeyID}),
			HaveField("NextRotation.Time", BeTemporally("==", k.ActivateAt.Add(720*time.Hour)))))

		By("the admin token: base64url of 32 random bytes")
		admin := get(&corev1.Secret{}, ns, "gh-authserver-admin").(*corev1.Secret)
		Expect(string(admin.Data["admin-token"])).To(MatchRegexp(`^[A-Za-z0-9_-]{43}$`))

		By("the config: jwt tokens, the reuse window, both files; valid as the server reads it")
		cfg := renderedConfig(ns, "gh")
		Expect(cfg.Tokens.AccessTokenFormat).To(Equal(config.AccessTokenJWT))
		Expect(cfg.Tokens.RefreshReuseWindow.Duration()).To(Equal(30 * time.Second))
		Expect(cfg.Secrets.SigningKeysFile).To(Equal("/etc/mcpauth/signing-keys/signing-keys.json"))
		Expect(cfg.Secrets.AdminTokenFile).To(Equal("/etc/mcpauth/admin/admin-token"))

		By("the mounts: each Secret a directory, so the kubelet updates it in place")
		d := &appsv1.Deployment{}
		Eventually(exists(d, ns, "gh-authserver")).Should(Succeed())
		pod := d.Spec.Template.Spec
		Expect(pod.Volumes).To(ContainElements(
			And(HaveField("Name", "signing-keys"), HaveField("Secret.SecretName", "gh-authserver-signing-keys"),
				HaveField("Secret.Items", []corev1.KeyToPath{{Key: "signing-keys.json", Path: "signing-keys.json"}})),
			And(HaveField("Name", "admin"), HaveField("Secret.SecretName", "gh-authserver-admin"),
				HaveField("Secret.Items", []corev1.KeyToPath{{Key: "admin-token", Path: "admin-token"}}))))
		Expect(pod.Containers[0].VolumeMounts).To(ContainElements(
			And(HaveField("Name", "signing-keys"), HaveField("MountPath", "/etc/mcpauth/signing-keys"), HaveField("SubPath", "")),
			And(HaveField("Name", "admin"), HaveField("MountPath", "/etc/mcpauth/admin"), HaveField("SubPath", ""))))

		By("both Secrets owned by the provider, and an event for the new key")
		get(p, ns, "gh")
		Expect(get(&corev1.Secret{}, ns, "gh-authserver-signing-keys")).To(controlledBy(p))
		Expect(admin).To(controlledBy(p))
		Eventually(eventReasons(ns)).Should(ContainElements("SigningKeyGenerated", "AdminTokenGenerated"))
	})

	It("rotates on the period with a pre-published successor, retires the old key later, and never rolls the pods", func() {
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(1))
		Eventually(podHash(ns, "gh")).ShouldNot(BeEmpty())
		hash := podHash(ns, "gh")()
		old := signingKeys(ns, "gh")()[0]
		admin := get(&corev1.Secret{}, ns, "gh-authserver-admin").(*corev1.Secret).Data["admin-token"]

		By("30 days later, a successor that signs one access-token lifetime (15m) on")
		testClock.Step(720 * time.Hour)
		stepped := testClock.Now()
		touch(p, "rotate-period")
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(2))
		keys := signingKeys(ns, "gh")()
		Expect(keys[0].KeyID).To(Equal(old.KeyID))
		next := keys[1]
		Expect(next.KeyID).NotTo(Equal(old.KeyID))
		Expect(next.ActivateAt).To(BeTemporally("~", stepped.Add(15*time.Minute), 10*time.Second))
		Expect(keys[0].PublishUntil).To(BeTemporally("==", next.ActivateAt.Add(15*time.Minute+time.Minute)),
			"the old key stays until the last token it signs has expired, plus a minute")
		Eventually(signingStatus(p)).Should(And(
			HaveField("ActiveKeyID", old.KeyID),
			HaveField("PublishedKeyIDs", []string{old.KeyID, next.KeyID}),
			HaveField("NextRotation.Time", BeTemporally("==", next.ActivateAt.Add(720*time.Hour)))))
		Eventually(eventReasons(ns)).Should(ContainElement("SigningKeyRotated"))

		By("15 minutes on, the successor signs; the Secret is not written")
		secretVersion := get(&corev1.Secret{}, ns, "gh-authserver-signing-keys").GetResourceVersion()
		testClock.Step(15 * time.Minute)
		touch(p, "successor-active")
		Eventually(signingStatus(p)).Should(HaveField("ActiveKeyID", next.KeyID))
		Expect(get(&corev1.Secret{}, ns, "gh-authserver-signing-keys").GetResourceVersion()).To(Equal(secretVersion))

		By("16 minutes more, the old key leaves the file")
		testClock.Step(16 * time.Minute)
		touch(p, "old-retired")
		Eventually(signingKeys(ns, "gh")).Should(ConsistOf(HaveField("KeyID", next.KeyID)))
		Eventually(signingStatus(p)).Should(HaveField("PublishedKeyIDs", []string{next.KeyID}))
		Eventually(eventReasons(ns)).Should(ContainElement("SigningKeyRetired"))

		By("the server follows the file, so the pods never rolled; the admin token is the same")
		Expect(podHash(ns, "gh")()).To(Equal(hash))
		Expect(get(&corev1.Secret{}, ns, "gh-authserver-admin").(*corev1.Secret).Data["admin-token"]).To(Equal(admin))
	})

	It("rotates on request, a minute on, once for each value of the rotate-signing-key annotation", func() {
		p.Annotations = map[string]string{oauthv1alpha1.RotateSigningKeyAnnotation: "present-at-creation"}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(1))
		Eventually(signingStatus(p)).Should(HaveField("LastRotationRequest", "present-at-creation"))
		Consistently(signingKeys(ns, "gh"), "500ms").Should(HaveLen(1), "the first key answers a request made before it")
		old := signingKeys(ns, "gh")()[0]

		By("a new value: a key published now that signs a minute on, once every replica can have it")
		requested := testClock.Now()
		annotate(p, oauthv1alpha1.RotateSigningKeyAnnotation, "2026-11-24")
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(2))
		keys := signingKeys(ns, "gh")()
		Expect(keys[0].KeyID).To(Equal(old.KeyID))
		Expect(keys[1].ActivateAt).To(And(
			BeTemporally(">=", requested.Add(time.Minute).Truncate(time.Second)),
			BeTemporally("<=", testClock.Now().Add(time.Minute+time.Second))))
		Expect(keys[0].PublishUntil).To(BeTemporally("==", keys[1].ActivateAt.Add(16*time.Minute)))
		Eventually(signingStatus(p)).Should(And(HaveField("ActiveKeyID", old.KeyID),
			HaveField("PublishedKeyIDs", []string{old.KeyID, keys[1].KeyID}),
			HaveField("LastRotationRequest", "2026-11-24")))
		Expect(get(&corev1.Secret{}, ns, "gh-authserver-signing-keys").GetAnnotations()).
			To(HaveKeyWithValue(rotationHandledAnnotation, "2026-11-24"))
		Eventually(func() []eventsv1.Event { return listEvents(ns) }).Should(ContainElement(And(
			HaveField("Reason", "SigningKeyRotated"),
			HaveField("Note", ContainSubstring("signing from "+keys[1].ActivateAt.Format(time.RFC3339))))))

		By("a minute on, the new key signs; the Secret is not written")
		secretVersion := get(&corev1.Secret{}, ns, "gh-authserver-signing-keys").GetResourceVersion()
		testClock.Step(time.Minute)
		touch(p, "requested-active")
		Eventually(signingStatus(p)).Should(HaveField("ActiveKeyID", keys[1].KeyID))
		Expect(get(&corev1.Secret{}, ns, "gh-authserver-signing-keys").GetResourceVersion()).To(Equal(secretVersion))

		By("the same value again, and other passes: no further rotation")
		touch(p, "other")
		annotate(p, oauthv1alpha1.RotateSigningKeyAnnotation, "2026-11-24")
		Consistently(signingKeys(ns, "gh"), "1s").Should(HaveLen(2))

		By("another value: another key")
		annotate(p, oauthv1alpha1.RotateSigningKeyAnnotation, "again")
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(3))
		Expect(signingKeys(ns, "gh")()[0].KeyID).To(Equal(old.KeyID), "tokens of the first key still verify")
	})

	It("rotates to a key of a new algorithm, published before it signs", func() {
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(1))
		old := signingKeys(ns, "gh")()[0]

		Eventually(func() error { // the reconciler patches the status meanwhile
			get(p, ns, "gh")
			p.Spec.Server.SigningKeyAlgorithm = oauthv1alpha1.SigningRS256
			return k8sClient.Update(ctx, p)
		}).Should(Succeed())
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(2))
		rs := signingKeys(ns, "gh")()[1]
		Expect(rs.Algorithm).To(Equal(config.SigningRS256))
		Expect(rs.Signer.(*rsa.PrivateKey).N.BitLen()).To(Equal(2048))
		Expect(rs.ActivateAt).To(BeTemporally(">", testClock.Now().Add(14*time.Minute)))
		Eventually(signingStatus(p)).Should(And(HaveField("ActiveKeyID", old.KeyID),
			HaveField("PublishedKeyIDs", []string{old.KeyID, rs.KeyID})))

		testClock.Step(15 * time.Minute)
		touch(p, "rsa-active")
		Eventually(signingStatus(p)).Should(HaveField("ActiveKeyID", rs.KeyID))
		Consistently(signingKeys(ns, "gh"), "500ms").Should(HaveLen(2), "no further key: the newest has the algorithm asked for")
	})

	It("renders the opaque format and a reuse window of 0s", func() {
		p.Spec.Server.AccessTokenFormat = oauthv1alpha1.AccessTokenOpaque
		p.Spec.Server.RefreshReuseWindow = &metav1.Duration{}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(func() string { return configText(ns, "gh") }).Should(ContainSubstring("accessTokenFormat: opaque"))
		cfg := renderedConfig(ns, "gh")
		Expect(cfg.Tokens.AccessTokenFormat).To(Equal(config.AccessTokenOpaque))
		Expect(cfg.Tokens.RefreshReuseWindow.Duration()).To(BeZero(), "0s is kept, not defaulted to 30s")
	})

	It("generates a new key when the Secret is deleted, with a warning that old tokens no longer verify", func() {
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(1))
		old := signingKeys(ns, "gh")()[0]
		Eventually(signingStatus(p)).Should(HaveField("ActiveKeyID", old.KeyID))
		Expect(k8sClient.Delete(ctx, get(&corev1.Secret{}, ns, "gh-authserver-signing-keys"))).To(Succeed())
		Eventually(signingKeys(ns, "gh")).Should(ConsistOf(HaveField("KeyID", Not(Equal(old.KeyID)))))
		Eventually(func() []eventsv1.Event { return listEvents(ns) }).Should(ContainElement(And(
			HaveField("Type", corev1.EventTypeWarning), HaveField("Reason", "SigningKeysLost"),
			HaveField("Note", ContainSubstring(old.KeyID)))))
	})

	It("replaces a signing keys file the server could not read, with a warning", func() {
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(signingKeys(ns, "gh")).Should(HaveLen(1))
		s := get(&corev1.Secret{}, ns, "gh-authserver-signing-keys").(*corev1.Secret)
		s.Data["signing-keys.json"] = []byte(`{"keys":[{"kid":"x","alg":"ES256","privateKey":"not a key","activateAt":"2026-01-01T00:00:00Z"}]}`)
		Expect(k8sClient.Update(ctx, s)).To(Succeed())
		Eventually(signingKeys(ns, "gh")).Should(ConsistOf(HaveField("Algorithm", config.SigningES256)))
		Eventually(func() []eventsv1.Event { return listEvents(ns) }).Should(ContainElement(And(
			HaveField("Type", corev1.EventTypeWarning), HaveField("Reason", "SigningKeysInvalid"),
			HaveField("Note", ContainSubstring("not a PKCS #8 PEM block")))))
	})
})

// signingKeys reads the provider's signing keys file as the server parses it; nil
// while the Secret is missing or unreadable.
func signingKeys(ns, provider string) func() []config.ParsedSigningKey {
	return func() []config.ParsedSigningKey {
		s := &corev1.Secret{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: provider + "-authserver-signing-keys"}, s); err != nil {
			return nil
		}
		keys, err := config.ParseSigningKeys(s.Data["signing-keys.json"])
		if err != nil {
			return nil
		}
		return keys
	}
}

// signingStatus reads the provider's status.signingKeys.
func signingStatus(p *oauthv1alpha1.OAuthProvider) func() *oauthv1alpha1.SigningKeysStatus {
	key := client.ObjectKeyFromObject(p)
	return func() *oauthv1alpha1.SigningKeysStatus {
		fresh := &oauthv1alpha1.OAuthProvider{}
		if err := k8sClient.Get(ctx, key, fresh); err != nil {
			return nil
		}
		return fresh.Status.SigningKeys
	}
}

// configText is the provider's rendered config.yaml, "" while there is none.
func configText(ns, provider string) string {
	cm := &corev1.ConfigMap{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: provider + "-authserver-config"}, cm); err != nil {
		return ""
	}
	return cm.Data[configKey]
}

// renderedConfig parses and validates the rendered config as the server does.
func renderedConfig(ns, provider string) *config.Config {
	GinkgoHelper()
	Eventually(func() string { return configText(ns, provider) }).ShouldNot(BeEmpty())
	cfg, err := config.Parse([]byte(configText(ns, provider)), nil)
	Expect(err).NotTo(HaveOccurred(), "the server refuses the rendered config")
	return cfg
}

// annotate sets one annotation with a merge patch, as kubectl annotate --overwrite does.
func annotate(obj client.Object, key, value string) {
	GinkgoHelper()
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value))
	Expect(k8sClient.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

// events lists the events in namespace ns.
func listEvents(ns string) []eventsv1.Event {
	var list eventsv1.EventList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

// eventReasons returns a function for Eventually listing the reasons of ns's events.
func eventReasons(ns string) func() []string {
	return func() []string {
		var reasons []string
		for _, e := range listEvents(ns) {
			reasons = append(reasons, e.Reason)
		}
		return reasons
	}
}

package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/app"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
	"github.com/mcpauth/mcpauth/internal/devkubelet"
)

// serverOnLoopback is where the tests' servers answer: the issuer's own host, since
// they listen on the issuer's loopback port rather than behind a Service.
func serverOnLoopback(p *oauthv1alpha1.OAuthProvider) string {
	u, _ := url.Parse(p.Spec.Server.URL)
	return u.Scheme + "://" + u.Host
}

// TestDynamicRegistrationsReachStatusAndTheLimitReachesTheServer: the per-address
// limit set in spec.server.registration is what the running server enforces, and the
// operator reports the server's count of dynamic registrations in
// status.dynamicClients, read from its admin API with the token the operator made.
func TestDynamicRegistrationsReachStatusAndTheLimitReachesTheServer(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(15 * time.Second)
	g.SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	k8s, cs := startOperator(t, ctx)
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	idp := upstreamtest.NewServer(t, upstreamtest.Options{RedirectURIs: []string{issuer + "/oauth/callback"}})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "registrations-"}}
	g.Expect(k8s.Create(ctx, ns)).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "upstream", Namespace: ns.Name},
		Data:       map[string][]byte{"client-secret": []byte(idp.ClientSecret)},
	})).To(Succeed())
	provider := &oauthv1alpha1.OAuthProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "corp", Namespace: ns.Name},
		Spec: oauthv1alpha1.OAuthProviderSpec{
			Type: oauthv1alpha1.ProviderOIDC, ClientID: idp.ClientID, IssuerURL: idp.Issuer,
			ClientSecretRef: oauthv1alpha1.SecretKeyReference{Name: "upstream", Key: "client-secret"},
			Server: oauthv1alpha1.ServerSpec{URL: issuer,
				Registration: oauthv1alpha1.RegistrationSpec{MaxPerSource: ptr.To[int32](2)}},
		},
	}
	g.Expect(k8s.Create(ctx, provider)).To(Succeed())

	deploy := &appsv1.Deployment{}
	g.Eventually(func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "corp-authserver"}, deploy)
	}).Should(Succeed())
	dynamic := func() *int32 {
		var p oauthv1alpha1.OAuthProvider
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(provider), &p)
		return p.Status.DynamicClients
	}
	g.Consistently(dynamic, time.Second).Should(BeNil(), "unknown while no server is ready")

	pod, err := devkubelet.Materialize(ctx, k8s, ns.Name, "corp-authserver", t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pod.Config.DynamicRegistration.MaxPerSource).To(Equal(2))
	g.Expect(pod.Config.DynamicRegistration.IdleTTL.Duration()).To(Equal(720 * time.Hour))
	pod.Config.ListenAddress = fmt.Sprintf("127.0.0.1:%d", port)
	server, err := app.New(ctx, pod.Config, app.Options{Getenv: pod.Getenv, Kube: cs.CoreV1().RESTClient()})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = server.Listen("")
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = server.Run(ctx) }()
	g.Eventually(func() int { return status(issuer + "/readyz") }).Should(Equal(http.StatusOK))

	register := func() int {
		resp, err := http.Post(issuer+"/oauth/register", "application/json",
			strings.NewReader(`{"redirect_uris":["`+clientRedirect+`"],"token_endpoint_auth_method":"none"}`))
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	g.Expect([]int{register(), register(), register()}).To(Equal([]int{201, 201, 429}), "spec.server.registration.maxPerSource is 2")

	markAvailable(g, ctx, k8s, deploy)
	g.Eventually(dynamic).Should(Equal(ptr.To[int32](2)))
}

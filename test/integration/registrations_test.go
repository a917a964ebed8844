package integration

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
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

	e := newOperatorEnv(t, ctx, g, "registrations-", upstreamtest.Options{})
	k8s, issuer, idp, ns := e.k8s, e.issuer, e.idp, e.ns
	provider := &oauthv1alpha1.OAuthProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "corp", Namespace: ns},
		Spec: oauthv1alpha1.OAuthProviderSpec{
			Type: oauthv1alpha1.ProviderOIDC, ClientID: idp.ClientID, IssuerURL: idp.Issuer,
			ClientSecretRef: oauthv1alpha1.SecretKeyReference{Name: "upstream", Key: "client-secret"},
			Server: oauthv1alpha1.ServerSpec{URL: issuer,
				Registration: oauthv1alpha1.RegistrationSpec{MaxPerSource: ptr.To[int32](2)}},
		},
	}
	g.Expect(k8s.Create(ctx, provider)).To(Succeed())

	deploy := e.deployment(g, ctx)
	dynamic := func() *int32 {
		var p oauthv1alpha1.OAuthProvider
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(provider), &p)
		return p.Status.DynamicClients
	}
	g.Consistently(dynamic, time.Second).Should(BeNil(), "unknown while no server is ready")

	pod := e.materialize(t, g, ctx)
	g.Expect(pod.Config.DynamicRegistration.MaxPerSource).To(Equal(2))
	g.Expect(pod.Config.DynamicRegistration.IdleTTL.Duration()).To(Equal(720 * time.Hour))
	e.serve(g, ctx, pod)

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

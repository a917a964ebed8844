package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

// TestAnMCPClientApprovesAHeldClient: with spec.clientPolicy.requireApproval, a client
// that registered itself with the running server waits at the approval page; an
// MCPClient naming it in spec.approveClientID lets it through within seconds (the
// operator lists the approval in the registry Secret the server watches, and never
// touches the store); deleting the MCPClient holds it again.
func TestAnMCPClientApprovesAHeldClient(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(15 * time.Second)
	g.SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	e := newOperatorEnv(t, ctx, g, "approval-", upstreamtest.Options{})
	k8s, issuer, idp, ns := e.k8s, e.issuer, e.idp, e.ns
	g.Expect(k8s.Create(ctx, &oauthv1alpha1.OAuthProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "corp", Namespace: ns},
		Spec: oauthv1alpha1.OAuthProviderSpec{
			Type: oauthv1alpha1.ProviderOIDC, ClientID: idp.ClientID, IssuerURL: idp.Issuer,
			ClientSecretRef: oauthv1alpha1.SecretKeyReference{Name: "upstream", Key: "client-secret"},
			Server:          oauthv1alpha1.ServerSpec{URL: issuer},
			ClientPolicy:    &oauthv1alpha1.ClientPolicySpec{RequireApproval: true},
		},
	})).To(Succeed())

	deploy := e.deployment(g, ctx)
	pod := e.materialize(t, g, ctx)
	g.Expect(pod.Config.ClientPolicy.RequireApproval).To(BeTrue())
	e.serve(g, ctx, pod)
	markAvailable(g, ctx, k8s, deploy)

	// A client registers itself and is held.
	resp, err := http.Post(issuer+"/oauth/register", "application/json",
		strings.NewReader(`{"client_name":"Self","redirect_uris":["`+clientRedirect+`"],"token_endpoint_auth_method":"none"}`))
	g.Expect(err).NotTo(HaveOccurred())
	var reg struct {
		ClientID string `json:"client_id"`
	}
	g.Expect(json.NewDecoder(resp.Body).Decode(&reg)).To(Succeed())
	resp.Body.Close()
	const challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	authorize := authorizeURL(issuer, reg.ClientID, challenge)
	g.Expect(status(authorize)).To(Equal(http.StatusForbidden), "held at the waiting page")

	// An MCPClient approves it.
	approval := &oauthv1alpha1.MCPClient{
		ObjectMeta: metav1.ObjectMeta{Name: "self-approval", Namespace: ns},
		Spec: oauthv1alpha1.MCPClientSpec{
			ProviderRef:     oauthv1alpha1.LocalObjectReference{Name: "corp"},
			ApproveClientID: reg.ClientID,
		},
	}
	start := time.Now()
	g.Expect(k8s.Create(ctx, approval)).To(Succeed())
	g.Eventually(func() int { return status(authorize) }).WithTimeout(5*time.Second).Should(Equal(http.StatusOK), "the consent page, past approval")
	t.Logf("the approval reached the server %s after the MCPClient was created", time.Since(start).Round(time.Millisecond))
	g.Eventually(func() string {
		var mc oauthv1alpha1.MCPClient
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(approval), &mc)
		for _, c := range mc.Status.Conditions {
			if c.Type == oauthv1alpha1.ConditionRegistered {
				return c.Reason
			}
		}
		return ""
	}).Should(Equal(oauthv1alpha1.ReasonApproved))

	// Deleting it withdraws the approval (nothing else approved the client).
	g.Expect(k8s.Delete(ctx, approval)).To(Succeed())
	g.Eventually(func() int { return status(authorize) }).WithTimeout(5 * time.Second).Should(Equal(http.StatusForbidden))
}

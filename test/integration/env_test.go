package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpauth/mcpauth/authserver/app"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
	"github.com/mcpauth/mcpauth/internal/devkubelet"
)

// operatorEnv is what every test of the package starts from: the operator on a real
// apiserver, an upstream OIDC provider whose client secret is in the Secret
// "upstream" of a fresh namespace, and the loopback issuer URL on which the test runs
// the authorization server of the OAuthProvider "corp" (serve), as its kubelet.
type operatorEnv struct {
	k8s    client.Client
	cs     kubernetes.Interface
	port   int
	issuer string
	idp    *upstreamtest.Server
	ns     string
}

// newOperatorEnv starts it; idp's redirect URI is set to the issuer's callback.
func newOperatorEnv(t *testing.T, ctx context.Context, g *WithT, nsPrefix string, idp upstreamtest.Options) *operatorEnv {
	t.Helper()
	e := &operatorEnv{}
	e.k8s, e.cs = startOperator(t, ctx)
	e.port = freePort(t)
	e.issuer = fmt.Sprintf("http://127.0.0.1:%d", e.port)
	idp.RedirectURIs = []string{e.issuer + "/oauth/callback"}
	e.idp = upstreamtest.NewServer(t, idp)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: nsPrefix}}
	g.Expect(e.k8s.Create(ctx, ns)).To(Succeed())
	e.ns = ns.Name
	g.Expect(e.k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "upstream", Namespace: e.ns},
		Data:       map[string][]byte{"client-secret": []byte(e.idp.ClientSecret)},
	})).To(Succeed())
	return e
}

// deployment waits for the server Deployment the operator renders for "corp".
func (e *operatorEnv) deployment(g *WithT, ctx context.Context) *appsv1.Deployment {
	deploy := &appsv1.Deployment{}
	g.Eventually(func() error {
		return e.k8s.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "corp-authserver"}, deploy)
	}).Should(Succeed())
	return deploy
}

// materialize lays out the files the server pod's volumes would mount.
func (e *operatorEnv) materialize(t *testing.T, g *WithT, ctx context.Context) *devkubelet.Pod {
	pod, err := devkubelet.Materialize(ctx, e.k8s, e.ns, "corp-authserver", t.TempDir())
	g.Expect(err).NotTo(HaveOccurred())
	return pod
}

// serve runs the server from pod's files on the issuer's port until ctx ends, and
// returns once it is ready.
func (e *operatorEnv) serve(g *WithT, ctx context.Context, pod *devkubelet.Pod) {
	pod.Config.ListenAddress = fmt.Sprintf("127.0.0.1:%d", e.port)
	server, err := app.New(ctx, pod.Config, app.Options{Getenv: pod.Getenv, Kube: e.cs.CoreV1().RESTClient()})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = server.Listen("")
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = server.Run(ctx) }()
	g.Eventually(func() int { return status(e.issuer + "/readyz") }).Should(Equal(http.StatusOK))
}

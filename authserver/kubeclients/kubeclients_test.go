package kubeclients_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/kubeclients"
	"github.com/mcpauth/mcpauth/internal/testutil/kubeenv"
)

// These tests run against a real kube-apiserver (envtest) with RBAC on, so they show
// that the narrow Role the operator grants the server is enough for the watch.

var (
	testEnv *envtest.Environment
	admin   kubernetes.Interface
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if testEnv, err = kubeenv.New(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()
	admin = kubernetes.NewForConfigOrDie(cfg)
	return m.Run()
}

// recordingSink keeps the last list of clients it was given.
type recordingSink struct {
	mu      sync.Mutex
	calls   int
	clients []config.Client
}

func (s *recordingSink) ReplaceClients(c []config.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.clients = c
	return nil
}

// ids returns the client IDs of the last list, or nil before the first call.
func (s *recordingSink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == 0 {
		return nil
	}
	ids := []string{}
	for _, c := range s.clients {
		ids = append(ids, c.ClientID)
	}
	return ids
}

const registryName, registryKey = "demo-authserver-clients", "clients.yaml"

// serverIdentity creates a namespace and a user bound to the Role the operator gives
// the server: get, list and watch on the registry Secret only. It returns the
// namespace and that user's configuration.
func serverIdentity(t *testing.T, ctx context.Context) (string, *rest.Config) {
	g := NewWithT(t)
	ns, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kubeclients-"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	user := "system:serviceaccount:" + ns.Name + ":demo-authserver"
	_, err = admin.RbacV1().Roles(ns.Name).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-authserver"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: []string{registryName}, Verbs: []string{"get", "list", "watch"},
		}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = admin.RbacV1().RoleBindings(ns.Name).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-authserver"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "demo-authserver"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	u, err := testEnv.AddUser(envtest.User{Name: user, Groups: []string{"system:authenticated"}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	return ns.Name, rest.CopyConfig(u.Config())
}

func clientsYAML(t *testing.T, ids ...string) []byte {
	var clients []config.Client
	for _, id := range ids {
		clients = append(clients, config.Client{ClientID: id, RedirectURIs: []string{"http://127.0.0.1/cb"}})
	}
	data, err := config.MarshalClients(clients)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestWatcherFollowsTheSecretWithTheNarrowRole(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, asServer := serverIdentity(t, ctx)
	core, err := kubeclients.NewClient(asServer)
	g.Expect(err).NotTo(HaveOccurred())

	sink := &recordingSink{}
	w, err := kubeclients.New(core, config.ClientsSecret{Namespace: ns, Name: registryName, Key: registryKey}, sink, nil)
	g.Expect(err).NotTo(HaveOccurred())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	// Before the Secret exists the server has no clients, and says it has synced.
	g.Eventually(w.HasSynced, 5*time.Second, 20*time.Millisecond).Should(BeTrue())
	g.Expect(sink.ids()).To(BeEmpty())
	g.Expect(sink.ids()).NotTo(BeNil(), "the sink was never called")

	secrets := admin.CoreV1().Secrets(ns)
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: registryName},
		Data:       map[string][]byte{registryKey: clientsYAML(t, "mcp_one")},
	}
	s, err = secrets.Create(ctx, s, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(sink.ids, 5*time.Second, 20*time.Millisecond).Should(Equal([]string{"mcp_one"}))

	s.Data[registryKey] = clientsYAML(t, "mcp_one", "mcp_two")
	s, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(sink.ids, 5*time.Second, 20*time.Millisecond).Should(Equal([]string{"mcp_one", "mcp_two"}))

	// A registry that does not parse keeps the clients the server has.
	s.Data[registryKey] = []byte("clients: [{clientID: ''}]")
	s, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Consistently(sink.ids, 300*time.Millisecond, 50*time.Millisecond).Should(Equal([]string{"mcp_one", "mcp_two"}))

	s.Data[registryKey] = clientsYAML(t, "mcp_three")
	_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(sink.ids, 5*time.Second, 20*time.Millisecond).Should(Equal([]string{"mcp_three"}))

	g.Expect(secrets.Delete(ctx, registryName, metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(sink.ids, 5*time.Second, 20*time.Millisecond).Should(BeEmpty())

	cancel()
	g.Eventually(done, 5*time.Second).Should(Receive(BeNil()))
}

func TestTheNarrowRoleReadsNoOtherSecret(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns, cfg := serverIdentity(t, ctx)
	asServer := kubernetes.NewForConfigOrDie(cfg)
	_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	_, err = asServer.CoreV1().Secrets(ns).Get(ctx, "other", metav1.GetOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "get another Secret: %v", err)
	_, err = asServer.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "list all Secrets: %v", err)
	_, err = asServer.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + registryName})
	g.Expect(err).NotTo(HaveOccurred(), "list the registry Secret by name")
}

func TestNewNeedsANamespace(t *testing.T) {
	g := NewWithT(t)
	t.Setenv(kubeclients.EnvPodNamespace, "")
	_, err := kubeclients.New(admin.CoreV1().RESTClient(), config.ClientsSecret{Name: registryName, Key: registryKey}, &recordingSink{}, nil)
	g.Expect(err).To(MatchError(ContainSubstring(kubeclients.EnvPodNamespace)))

	t.Setenv(kubeclients.EnvPodNamespace, "from-env")
	_, err = kubeclients.New(admin.CoreV1().RESTClient(), config.ClientsSecret{Name: registryName, Key: registryKey}, &recordingSink{}, nil)
	g.Expect(err).NotTo(HaveOccurred())
}

// approvalSink is a recordingSink that also keeps the approvals.
type approvalSink struct {
	recordingSink
	approvals []string
}

func (s *approvalSink) ReplaceApprovals(as []config.Approval) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.approvals = []string{}
	for _, a := range as {
		s.approvals = append(s.approvals, a.ClientID)
	}
	return nil
}

func (s *approvalSink) approved() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.approvals
}

func TestWatcherHandsApprovalsToAnApprovalSink(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns, asServer := serverIdentity(t, ctx)
	core, err := kubeclients.NewClient(asServer)
	g.Expect(err).NotTo(HaveOccurred())
	sink := &approvalSink{}
	w, err := kubeclients.New(core, config.ClientsSecret{Namespace: ns, Name: registryName, Key: registryKey}, sink, nil)
	g.Expect(err).NotTo(HaveOccurred())
	go func() { _ = w.Run(ctx) }()
	g.Eventually(w.HasSynced, 5*time.Second, 20*time.Millisecond).Should(BeTrue())

	data, err := config.MarshalClientsFile(config.ClientsFile{
		Clients:   []config.Client{{ClientID: "mcp_one", RedirectURIs: []string{"http://127.0.0.1/cb"}}},
		Approvals: []config.Approval{{ClientID: "https://tools.example.org/client.json", ApprovedBy: "MCPClient tools"}},
	})
	g.Expect(err).NotTo(HaveOccurred())
	secrets := admin.CoreV1().Secrets(ns)
	s, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: registryName}, Data: map[string][]byte{registryKey: data}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(sink.approved, 5*time.Second, 20*time.Millisecond).Should(Equal([]string{"https://tools.example.org/client.json"}))
	g.Expect(sink.ids()).To(Equal([]string{"mcp_one"}))

	s.Data[registryKey] = clientsYAML(t, "mcp_one")
	_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(sink.approved, 5*time.Second, 20*time.Millisecond).Should(BeEmpty())
}

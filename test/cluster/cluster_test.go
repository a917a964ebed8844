//go:build linux

// Package cluster runs mcpauth on a real single-node Kubernetes cluster on this
// machine (hack/cluster: etcd, the Kubernetes components built from source, containerd
// and runc, no Docker, no registry), where the operator's pods really run: their
// probes, security context, Services, RBAC and garbage collection. It starts the
// cluster with hack/cluster/up.sh and removes it with down.sh, and proves the machine
// is as it was before.
//
// It runs where the machine allows it (root, cgroups, the cluster's Debian packages,
// the cached Kubernetes build; hack/cluster/check.sh decides) and otherwise is skipped
// with the reason, except under CI=true, where that is a failure.
// MCPAUTH_CLUSTER_TEST=0 skips it on purpose.
package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

const (
	namespace     = "mcpauth-cluster-test"
	providerName  = "idp"
	serverName    = providerName + "-authserver"
	upstreamID    = "mcpauth-cluster-test"
	userLogin     = "alice"
	userPassword  = "alice-password"
	userSub       = "alice"
	userEmail     = "alice@example.com"
	kubeconfig    = stateDir + "/admin.kubeconfig"
	mcpServerName = "mcpserver"
	mcpServerPort = 8080
)

// gate skips (or under CI=true fails) when the machine cannot run the cluster.
func gate(t *testing.T, root string) {
	t.Helper()
	if testing.Short() {
		t.Skip("the cluster test starts a Kubernetes cluster; skipped in -short mode")
	}
	if v := os.Getenv("MCPAUTH_CLUSTER_TEST"); v == "0" || v == "false" {
		t.Skip("skipped on purpose: MCPAUTH_CLUSTER_TEST=" + v)
	}
	why := ""
	out, err := exec.Command(filepath.Join(root, "hack/cluster/check.sh")).CombinedOutput()
	switch {
	case err != nil:
		why = strings.TrimSpace(string(out))
	case !built():
		why = "the Kubernetes binaries are not built yet: `make cluster-assets` builds them (about 13 minutes once; make test does it)"
	case !fileExists(filepath.Join(root, "test/e2e/node/node_modules/oidc-provider")):
		why = "the Node packages are missing: run `make install-deps`"
	default:
		why = leftovers(t, root)
	}
	if why == "" {
		if _, err := exec.LookPath("node"); err != nil {
			why = "node (Node.js 20.19 or later) is not on PATH"
		}
	}
	if why == "" {
		return
	}
	msg := "the cluster test cannot run on this machine: " + why
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI=true: set MCPAUTH_CLUSTER_TEST=0 to skip it on purpose)")
	}
	t.Skip(msg)
}

// clusterBin is where hack/cluster/build.sh keeps the Kubernetes binaries.
func clusterBin() string {
	cache := os.Getenv("MCPAUTH_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "mcpauth")
	}
	v := os.Getenv("KUBE_VERSION")
	if v == "" {
		v = "v1.37.2"
	}
	return filepath.Join(cache, "cluster", v)
}

func built() bool {
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"} {
		if !fileExists(filepath.Join(clusterBin(), c)) {
			return false
		}
	}
	return true
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// env is one run: the cluster, the host-side components, and what they are called.
type env struct {
	root     string
	kubectl  string
	k8s      client.Client
	redis    string // host:port on the bridge
	idp      *process
	idpPort  int
	idpURL   string
	issuer   *proxy // 127.0.0.1 → the authorization server's Service, a connection per request
	mcp      *proxy // 127.0.0.1 → the example MCP server's Service
	upstream string // the upstream client secret, as the Secret holds it now
}

func (e *env) issuerURL() string { return fmt.Sprintf("http://127.0.0.1:%d", e.issuer.port()) }
func (e *env) mcpURL() string    { return fmt.Sprintf("http://127.0.0.1:%d/mcp", e.mcp.port()) }

// leftovers undoes a cluster nobody uses any more: one whose processes are gone (a
// reboot, a run killed before its cleanup) or one a killed cluster test started for
// itself. A cluster someone runs (make dev, make cluster-up) is theirs: the test says
// why it cannot run instead.
func leftovers(t *testing.T, root string) (why string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(root, "hack/cluster/state.sh")).CombinedOutput()
	state := strings.TrimSpace(string(out))
	switch {
	case err != nil:
		return "hack/cluster/state.sh: " + state
	case state == "up":
		return "a dev cluster is already up (make dev or make cluster-up): stop it, or run `make cluster-down`"
	case state == "stale" || state == "orphaned":
		out, err := exec.Command(filepath.Join(root, "hack/cluster/down.sh")).CombinedOutput()
		t.Logf("a cluster was left behind (%s); undone with down.sh:\n%s", state, out)
		if err != nil {
			t.Fatalf("down.sh could not undo the cluster left behind: %v", err)
		}
	}
	return ""
}

// TestOperatorOnARealCluster is issue 11's end-to-end test; see the package comment.
func TestOperatorOnARealCluster(t *testing.T) {
	root := moduleRoot(t)
	gate(t, root)
	readInputs(t, root)
	began := time.Now()
	// Generous for a first run, which compiles the images on a busy machine; each wait
	// inside has its own, shorter bound.
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()

	before := snapshot(t)
	// Registered first, so it runs last: after every host process of the test stopped.
	t.Cleanup(func() {
		if t.Failed() {
			logTails(t)
		}
		out, err := exec.Command(filepath.Join(root, "hack/cluster/down.sh")).CombinedOutput()
		t.Logf("cluster-down:\n%s", out)
		if err != nil {
			t.Errorf("cluster-down: %v", err)
		}
		if d := before.diff(snapshot(t)); len(d) > 0 {
			t.Errorf("the machine is not as before cluster-up:\n  %s", strings.Join(d, "\n  "))
		} else {
			t.Log("after cluster-down the machine is as before: processes, mounts, links, iptables, netns, sysctls, cgroups, paths")
		}
	})

	e := &env{root: root}
	// Steps, not subtests: what a step starts (Redis, the IdP, the forwarders) lives
	// until the end of the test, and a failed step ends it.
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		t.Logf("=== %s", name)
		start := time.Now()
		f(t)
		if t.Failed() {
			t.Fatalf("--- FAILED: %s (%s)", name, time.Since(start).Round(100*time.Millisecond))
		}
		t.Logf("--- ok: %s (%s)", name, time.Since(start).Round(100*time.Millisecond))
	}
	step("cluster up", func(t *testing.T) { e.up(ctx, t) })
	step("every component listens on loopback or the bridge only", func(t *testing.T) { checkListeners(t) })
	step("operator from config/default reaches Ready", func(t *testing.T) { e.deployOperator(ctx, t) })
	step("provider with Redis: two server pods Ready, locked down", func(t *testing.T) { e.provider(ctx, t) })
	step("MCP SDK client logs in through the Service, twice", func(t *testing.T) { e.clients(ctx, t) })
	step("an MCPClient applied while the pods run logs in within 5 seconds", func(t *testing.T) { e.lateClient(ctx, t) })
	step("the server's ServiceAccount reads only its own Secret", func(t *testing.T) { e.rbac(ctx, t) })
	step("rotating the upstream Secret rolls the pods", func(t *testing.T) { e.rotate(ctx, t) })
	step("deleting the OAuthProvider removes what it owned", func(t *testing.T) { e.garbageCollection(ctx, t) })
	t.Logf("cluster test took %s", time.Since(began).Round(time.Second))
}

func (e *env) up(ctx context.Context, t *testing.T) {
	if _, err := run(ctx, t, "cluster-up", e.root, []string{fmt.Sprintf("MCPAUTH_CLUSTER_OWNER=%d", os.Getpid())}, filepath.Join(e.root, "hack/cluster/up.sh")); err != nil {
		t.Fatalf("cluster-up: %v", err)
	}
	if _, err := run(ctx, t, "images", e.root, nil, filepath.Join(e.root, "hack/cluster/images.sh")); err != nil {
		t.Fatalf("images: %v", err)
	}
	e.kubectl = filepath.Join(clusterBin(), "kubectl")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = oauthv1alpha1.AddToScheme(scheme)
	if e.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
}

// kubectlIn runs kubectl against the cluster with in as its input, and fails the test
// when it fails.
func (e *env) kubectlIn(ctx context.Context, t *testing.T, in string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, e.kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Dir = e.root
	cmd.Stdin = strings.NewReader(in)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *env) deployOperator(ctx context.Context, t *testing.T) {
	e.kubectlIn(ctx, t, "", "apply", "--server-side", "-k", "config/default")
	if err := poll(ctx, 2*time.Minute, func() error {
		var d appsv1.Deployment
		if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: "mcpauth-system", Name: "mcpauth-controller-manager"}, &d); err != nil {
			return err
		}
		if d.Status.ReadyReplicas < 1 || d.Status.UpdatedReplicas < 1 {
			return fmt.Errorf("ready %d of %d", d.Status.ReadyReplicas, d.Status.Replicas)
		}
		return nil
	}); err != nil {
		e.describe(t, "mcpauth-system")
		t.Fatalf("the operator did not become Ready: %v", err)
	}
}

// describe logs the pods and events of a namespace, for a failure.
func (e *env) describe(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kubectl, "--kubeconfig", kubeconfig, "-n", ns, "describe", "pods")
	out, _ := cmd.CombinedOutput()
	t.Logf("kubectl -n %s describe pods:\n%s", ns, out)
	cmd = exec.CommandContext(ctx, e.kubectl, "--kubeconfig", kubeconfig, "-n", ns, "logs", "--all-containers", "--prefix", "--tail=40", "-l", "app.kubernetes.io/part-of=mcpauth")
	out, _ = cmd.CombinedOutput()
	t.Logf("logs:\n%s", out)
}

func (e *env) startIdP(ctx context.Context, t *testing.T, secret string) {
	if e.idp != nil {
		e.idp.stop()
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal(err)
	}
	nodeDir := filepath.Join(e.root, "test/e2e/node")
	p, line := firstLine(ctx, t, "idp", nodeDir, []string{
		"IDP_CLIENT_ID=" + upstreamID, "IDP_CLIENT_SECRET=" + secret,
		"IDP_REDIRECT_URI=" + e.issuerURL() + "/oauth/callback",
		"IDP_USER_LOGIN=" + userLogin, "IDP_USER_PASSWORD=" + userPassword,
		"IDP_USER_SUB=" + userSub, "IDP_USER_EMAIL=" + userEmail, "IDP_USER_NAME=Alice",
		"IDP_HOST=" + bridgeIP, fmt.Sprintf("IDP_PORT=%d", e.idpPort),
	}, node, "upstream-idp.mjs")
	var info struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal([]byte(line), &info); err != nil || info.Issuer != e.idpURL {
		t.Fatalf("the IdP announced %q, want issuer %s", line, e.idpURL)
	}
	e.idp = p
}

func (e *env) provider(ctx context.Context, t *testing.T) {
	// Redis on the host, on the bridge address the pods reach; never evicting keys.
	e.redis = fmt.Sprintf("%s:%d", bridgeIP, freePort(t, bridgeIP))
	_, port, _ := strings.Cut(e.redis, ":")
	start(t, "redis", t.TempDir(), nil, nil, "redis-server", "--bind", bridgeIP, "--port", port,
		"--protected-mode", "no", "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction")

	e.issuer, e.mcp = newHTTPProxy(t), newProxy(t)
	e.idpPort = freePort(t, bridgeIP)
	e.idpURL = fmt.Sprintf("http://%s:%d", bridgeIP, e.idpPort)
	e.upstream = "first-upstream-secret"
	e.startIdP(ctx, t, e.upstream)

	e.kubectlIn(ctx, t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Secret
metadata: {name: upstream, namespace: %[1]s}
stringData: {client-secret: %[2]s}
---
apiVersion: v1
kind: Secret
metadata: {name: not-the-servers, namespace: %[1]s}
stringData: {token: keep-out}
---
apiVersion: oauth.mcpauth.dev/v1alpha1
kind: OAuthProvider
metadata: {name: %[3]s, namespace: %[1]s}
spec:
  type: oidc
  issuerURL: %[4]s
  insecureAllowHTTP: true
  clientID: %[5]s
  clientSecretRef: {name: upstream, key: client-secret}
  scopes: [openid, email, profile]
  server:
    url: %[6]s
    replicas: 2
    scopesSupported: [mcp]
  tokenStore:
    type: redis
    redis:
      addresses: [%[7]q]
---
apiVersion: oauth.mcpauth.dev/v1alpha1
kind: MCPClient
metadata: {name: mcpserver, namespace: %[1]s}
spec:
  providerRef: {name: %[3]s}
  clientName: Example MCP server
  redirectURIs: [http://127.0.0.1/unused]
  tokenEndpointAuthMethod: client_secret_basic
  grantTypes: [authorization_code]
  secretName: mcpserver-credentials
  introspectUpstream: true
`, namespace, e.upstream, providerName, e.idpURL, upstreamID, e.issuerURL(), e.redis), "apply", "-f", "-")

	pods := e.awaitServerPods(ctx, t, 2, nil)
	for _, p := range pods {
		e.checkLockedDown(t, p)
	}
	var svc corev1.Service
	if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: serverName}, &svc); err != nil {
		t.Fatal(err)
	}
	e.issuer.setTarget(fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port))
	e.awaitProviderReady(ctx, t)
	if err := poll(ctx, time.Minute, func() error { return get(ctx, e.issuerURL()+"/readyz", http.StatusOK) }); err != nil {
		t.Fatalf("the server through its Service: %v", err)
	}
}

func (e *env) awaitProviderReady(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := poll(ctx, 2*time.Minute, func() error {
		var p oauthv1alpha1.OAuthProvider
		if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: providerName}, &p); err != nil {
			return err
		}
		c := apimeta.FindStatusCondition(p.Status.Conditions, oauthv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != p.Generation {
			return fmt.Errorf("Ready: %+v", c)
		}
		return nil
	}); err != nil {
		e.describe(t, namespace)
		t.Fatalf("the OAuthProvider is not Ready: %v", err)
	}
}

// awaitServerPods waits for n Ready server pods, none of them in old, and no other
// server pod (a rollout finished), and returns them.
func (e *env) awaitServerPods(ctx context.Context, t *testing.T, n int, old []corev1.Pod) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	if err := poll(ctx, 3*time.Minute, func() error {
		var list corev1.PodList
		if err := e.k8s.List(ctx, &list, client.InNamespace(namespace),
			client.MatchingLabels{"app.kubernetes.io/instance": providerName, "app.kubernetes.io/name": "mcpauth-authserver"}); err != nil {
			return err
		}
		pods = nil
		for _, p := range list.Items {
			if slices.ContainsFunc(old, func(o corev1.Pod) bool { return o.UID == p.UID }) {
				return fmt.Errorf("old pod %s still there (%s)", p.Name, p.Status.Phase)
			}
			if !podReady(p) {
				return fmt.Errorf("pod %s not Ready (%s)", p.Name, p.Status.Phase)
			}
			pods = append(pods, p)
		}
		if len(pods) != n {
			return fmt.Errorf("%d server pods, want %d", len(pods), n)
		}
		return nil
	}); err != nil {
		e.describe(t, namespace)
		t.Fatalf("server pods: %v", err)
	}
	return pods
}

func podReady(p corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// checkLockedDown looks at the server's process on this machine: it runs as the
// non-root user with a read-only root file system, as the rendered security context
// says, and passed its real readiness probe to be Ready.
func (e *env) checkLockedDown(t *testing.T, p corev1.Pod) {
	t.Helper()
	if len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready {
		t.Fatalf("pod %s: container not ready: %+v", p.Name, p.Status.ContainerStatuses)
	}
	id := p.Status.ContainerStatuses[0].ContainerID
	id = id[strings.Index(id, "://")+3:]
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, proc := range procs {
		cg, err := os.ReadFile(proc + "/cgroup")
		if err != nil || !strings.Contains(string(cg), id) {
			continue
		}
		status, _ := os.ReadFile(proc + "/status")
		if !strings.Contains(string(status), "\nUid:\t65532\t65532\t65532\t65532\n") {
			t.Errorf("pod %s: the server's process %s does not run as 65532:\n%s", p.Name, proc, status)
		}
		mi, _ := os.ReadFile(proc + "/mountinfo")
		rootRO := false
		for _, l := range strings.Split(string(mi), "\n") {
			f := strings.Fields(l)
			if len(f) > 5 && f[4] == "/" {
				rootRO = slices.Contains(strings.Split(f[5], ","), "ro")
			}
		}
		if !rootRO {
			t.Errorf("pod %s: the server's root file system is writable", p.Name)
		}
		return
	}
	t.Fatalf("pod %s: no process of container %s on this machine", p.Name, id)
}

func get(ctx context.Context, u string, want int) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s %s", u, resp.Status, b)
	}
	return nil
}

// clients deploys the example MCP server as a pod, then runs the TypeScript SDK client
// twice at once through the Services, and checks that both replicas served it.
func (e *env) clients(ctx context.Context, t *testing.T) {
	var creds corev1.Secret
	if err := poll(ctx, time.Minute, func() error {
		return e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "mcpserver-credentials"}, &creds)
	}); err != nil {
		t.Fatalf("the MCP server's credentials: %v", err)
	}
	var svc corev1.Service
	if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: serverName}, &svc); err != nil {
		t.Fatal(err)
	}
	introspection := fmt.Sprintf("http://%s:%d/oauth/introspect", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	e.kubectlIn(ctx, t, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s, labels: {app.kubernetes.io/part-of: mcpauth}}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s, app.kubernetes.io/part-of: mcpauth}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: mcpserver
        image: mcpauth-mcpserver:dev
        imagePullPolicy: Never
        args:
        - --listen=:%[3]d
        - --resource-url=%[4]s
        - --issuer=%[5]s
        - --introspection-endpoint=%[6]s
        - --introspection-client-id=%[7]s
        - --upstream-userinfo-url=%[8]s/me
        env:
        - name: MCP_INTROSPECTION_CLIENT_SECRET
          valueFrom: {secretKeyRef: {name: mcpserver-credentials, key: client-secret}}
        ports: [{name: http, containerPort: %[3]d}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {app: %[2]s}
  ports: [{name: http, port: 80, targetPort: http}]
`, namespace, mcpServerName, mcpServerPort, e.mcpURL(), e.issuerURL(), introspection, creds.Data["client-id"], e.idpURL),
		"apply", "-f", "-")
	if err := poll(ctx, 2*time.Minute, func() error {
		var d appsv1.Deployment
		if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: mcpServerName}, &d); err != nil {
			return err
		}
		if d.Status.ReadyReplicas < 1 {
			return errNotYet
		}
		return nil
	}); err != nil {
		e.describe(t, namespace)
		t.Fatalf("the example MCP server: %v", err)
	}
	var msvc corev1.Service
	if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: mcpServerName}, &msvc); err != nil {
		t.Fatal(err)
	}
	e.mcp.setTarget(msvc.Spec.ClusterIP + ":80")
	// kube-proxy programs a new Service's rules a moment after the pod is Ready.
	if err := poll(ctx, time.Minute, func() error { return get(ctx, e.mcpURL(), http.StatusUnauthorized) }); err != nil {
		t.Fatalf("the MCP server through its Service: %v", err)
	}

	var wg sync.WaitGroup
	sums := make([]clientSummary, 2)
	for i := range sums {
		wg.Go(func() { sums[i] = e.runClient(ctx, t, fmt.Sprintf("client-%d", i+1), "dcr", "") })
	}
	wg.Wait()
	if t.Failed() {
		e.describe(t, namespace)
		t.FailNow()
	}
	for _, s := range sums {
		if s.Identity["sub"] != userSub || s.Identity["email"] != userEmail {
			t.Errorf("whoami: %v, want %s <%s>", s.Identity, userSub, userEmail)
		}
		if s.Iss != e.issuerURL() {
			t.Errorf("iss %q, want %q", s.Iss, e.issuerURL())
		}
		if !slices.ContainsFunc(s.Requests, func(r string) bool { return strings.HasPrefix(r, "POST /oauth/register 201") }) {
			t.Errorf("the client did not register dynamically: %v", s.Requests)
		}
	}
	// Both replicas served the flow: kube-proxy spread the connections over them.
	for _, p := range e.serverPods(ctx, t) {
		n := oauthRequests(t, fmt.Sprintf("%s:8080", p.Status.PodIP))
		t.Logf("pod %s served %v OAuth requests", p.Name, n)
		if n == 0 {
			t.Errorf("pod %s served no OAuth request: the Service did not balance over both replicas", p.Name)
		}
	}
}

func (e *env) serverPods(ctx context.Context, t *testing.T) []corev1.Pod {
	var list corev1.PodList
	if err := e.k8s.List(ctx, &list, client.InNamespace(namespace),
		client.MatchingLabels{"app.kubernetes.io/instance": providerName, "app.kubernetes.io/name": "mcpauth-authserver"}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// clientSummary is what client.mjs prints on success (the fields this test reads).
type clientSummary struct {
	ClientID string         `json:"clientID"`
	Iss      string         `json:"iss"`
	Tools    []string       `json:"tools"`
	Identity map[string]any `json:"identity"`
	Requests []string       `json:"requests"`
}

// runClient runs the official TypeScript MCP SDK client once: connect, 401, discovery,
// registration (mode dcr) or a pre-registered client (static), the browser step,
// token, tools/list, whoami.
func (e *env) runClient(ctx context.Context, t *testing.T, name, mode, clientID string) clientSummary {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Error(err)
		return clientSummary{}
	}
	out, err := run(ctx, t, name, filepath.Join(e.root, "test/e2e/node"), []string{
		"MCP_URL=" + e.mcpURL(), "EXPECT_ISSUER=" + e.issuerURL(), "CLIENT_MODE=" + mode, "CLIENT_ID=" + clientID,
		"IDP_USER_LOGIN=" + userLogin, "IDP_USER_PASSWORD=" + userPassword,
		"EXPECT_SUB=" + userSub, "EXPECT_EMAIL=" + userEmail, "EXPIRY_WAIT_MS=0", "TIMEOUT_MS=60000",
	}, node, "client.mjs")
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return clientSummary{}
	}
	var s clientSummary
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &s); err != nil {
		t.Errorf("%s: summary %q: %v", name, out, err)
	}
	t.Logf("%s: logged in as %v with client %s", name, s.Identity["sub"], s.ClientID)
	return s
}

// oauthRequests sums a replica's request counters of the OAuth endpoints.
func oauthRequests(t *testing.T, backend string) float64 {
	resp, err := http.Get("http://" + backend + "/metrics")
	if err != nil {
		t.Errorf("metrics of %s: %v", backend, err)
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var n float64
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "mcpauth_http_requests_total{") {
			continue
		}
		for _, ep := range []string{"authorize", "consent", "callback", "token", "register"} {
			if strings.Contains(l, `endpoint="`+ep+`"`) {
				var v float64
				_, _ = fmt.Sscanf(l[strings.LastIndex(l, " ")+1:], "%g", &v)
				n += v
			}
		}
	}
	return n
}

// lateClient applies a public MCPClient while the servers run; within 5 seconds every
// replica accepts it at the authorization endpoint, and the SDK client logs in with it.
func (e *env) lateClient(ctx context.Context, t *testing.T) {
	applied := time.Now()
	e.kubectlIn(ctx, t, fmt.Sprintf(`apiVersion: oauth.mcpauth.dev/v1alpha1
kind: MCPClient
metadata: {name: desktop, namespace: %s}
spec:
  providerRef: {name: %s}
  clientName: A desktop MCP host
  redirectURIs: [http://127.0.0.1/callback]
`, namespace, providerName), "apply", "-f", "-")
	var clientID string
	pods := e.serverPods(ctx, t)
	err := poll(ctx, 5*time.Second, func() error {
		var c oauthv1alpha1.MCPClient
		if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "desktop"}, &c); err != nil {
			return err
		}
		if clientID = c.Status.ClientID; clientID == "" {
			return fmt.Errorf("no client ID in the MCPClient's status yet")
		}
		for _, p := range pods {
			if err := authorizeAccepted(ctx, fmt.Sprintf("http://%s:8080", p.Status.PodIP), clientID); err != nil {
				return fmt.Errorf("pod %s: %w", p.Name, err)
			}
		}
		return nil
	})
	took := time.Since(applied)
	if err != nil {
		t.Fatalf("the new client is not accepted by every replica within 5 s of kubectl apply: %v", err)
	}
	t.Logf("every replica accepted the new client %s %s after kubectl apply", clientID, took.Round(10*time.Millisecond))
	s := e.runClient(ctx, t, "client-static", "static", clientID)
	if s.ClientID != clientID || s.Identity["sub"] != userSub {
		t.Errorf("static client: client %q identity %v", s.ClientID, s.Identity)
	}
	if slices.ContainsFunc(s.Requests, func(r string) bool { return strings.HasPrefix(r, "POST /oauth/register") }) {
		t.Errorf("the pre-registered client registered again: %v", s.Requests)
	}
}

// authorizeAccepted is nil when the server starts a login for clientID (a redirect to
// its consent page or the upstream), not an error about the client.
func authorizeAccepted(ctx context.Context, base, clientID string) error {
	q := url.Values{
		"response_type": {"code"}, "client_id": {clientID},
		"redirect_uri":   {"http://127.0.0.1:53682/callback"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
		"state": {"s"}, "scope": {"mcp"},
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/oauth/authorize?"+q.Encode(), nil)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusOK {
		if loc := resp.Header.Get("Location"); strings.Contains(loc, "error=") {
			return fmt.Errorf("redirected with an error: %s", loc)
		}
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	return fmt.Errorf("authorize: %s %s", resp.Status, b)
}

// rbac runs a pod as the server's ServiceAccount that reads Secrets through the API:
// its registry Secret is allowed, the upstream credentials and another Secret refused.
func (e *env) rbac(ctx context.Context, t *testing.T) {
	e.kubectlIn(ctx, t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: rbac-check, namespace: %[1]s}
spec:
  serviceAccountName: %[2]s
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: kubecheck
    image: mcpauth-kubecheck:dev
    imagePullPolicy: Never
    args: [--allowed=%[2]s-clients, "--forbidden=upstream,not-the-servers,mcpserver-credentials"]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`, namespace, serverName), "apply", "-f", "-")
	var pod corev1.Pod
	if err := poll(ctx, 2*time.Minute, func() error {
		if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "rbac-check"}, &pod); err != nil {
			return err
		}
		if pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
			return fmt.Errorf("phase %s", pod.Status.Phase)
		}
		return nil
	}); err != nil {
		e.describe(t, namespace)
		t.Fatal(err)
	}
	logs := e.kubectlIn(ctx, t, "", "-n", namespace, "logs", "rbac-check")
	t.Logf("in-pod check as %s:\n%s", serverName, logs)
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("the in-pod check failed (%s):\n%s", pod.Status.Phase, logs)
	}
	for _, want := range []string{serverName + "-clients 200", "upstream 403", "not-the-servers 403", "mcpserver-credentials 403"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the in-pod check did not report %q", want)
		}
	}
}

// rotate changes the upstream client secret (at the IdP and in the Secret): the
// operator rolls the Deployment; new pods get Ready, the old ones go, and a login works
// with the new secret.
func (e *env) rotate(ctx context.Context, t *testing.T) {
	old := e.serverPods(ctx, t)
	e.upstream = "rotated-upstream-secret"
	e.startIdP(ctx, t, e.upstream)
	var s corev1.Secret
	if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "upstream"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data["client-secret"] = []byte(e.upstream)
	if err := e.k8s.Update(ctx, &s); err != nil {
		t.Fatal(err)
	}
	e.awaitServerPods(ctx, t, 2, old)
	e.awaitProviderReady(ctx, t)
	e.awaitServiceAnswers(ctx, t)
	sum := e.runClient(ctx, t, "client-after-rotation", "dcr", "")
	if sum.Identity["sub"] != userSub {
		t.Errorf("after the rotation: identity %v", sum.Identity)
	}
}

// awaitServiceAnswers waits until ten requests in a row through the Service reach a
// ready server: the pods being Ready does not mean kube-proxy has caught up with their
// new addresses yet, and on a loaded machine it can lag by seconds.
func (e *env) awaitServiceAnswers(ctx context.Context, t *testing.T) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	inARow := 0
	err := poll(ctx, time.Minute, func() error {
		resp, err := hc.Get(e.issuerURL() + "/readyz")
		if err != nil {
			inARow = 0
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			inARow = 0
			return fmt.Errorf("readyz answered %d", resp.StatusCode)
		}
		if inARow++; inARow < 10 {
			return fmt.Errorf("%d answers in a row", inARow)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the Service did not answer steadily after the rollout: %v", err)
	}
}

// garbageCollection deletes the OAuthProvider and waits until nothing it owned (through
// owner references, as the garbage collector follows them) is left.
func (e *env) garbageCollection(ctx context.Context, t *testing.T) {
	var p oauthv1alpha1.OAuthProvider
	if err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: providerName}, &p); err != nil {
		t.Fatal(err)
	}
	owned := e.ownedBy(ctx, t, p.UID)
	if len(owned) < 5 {
		t.Fatalf("the OAuthProvider owns only %v", owned)
	}
	t.Logf("the OAuthProvider owns %s", strings.Join(owned, ", "))
	if err := e.k8s.Delete(ctx, &p); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 2*time.Minute, func() error {
		if left := e.ownedBy(ctx, t, p.UID); len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		if pods := e.serverPods(ctx, t); len(pods) > 0 {
			return fmt.Errorf("%d server pods left", len(pods))
		}
		err := e.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: providerName}, &oauthv1alpha1.OAuthProvider{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("the OAuthProvider is still there: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatalf("garbage collection: %v", err)
	}
}

// ownedBy lists the namespace's objects with an owner reference to uid.
func (e *env) ownedBy(ctx context.Context, t *testing.T, uid types.UID) []string {
	t.Helper()
	var out []string
	lists := map[string]client.ObjectList{
		"Deployment": &appsv1.DeploymentList{}, "Service": &corev1.ServiceList{},
		"ServiceAccount": &corev1.ServiceAccountList{}, "ConfigMap": &corev1.ConfigMapList{},
		"Secret": &corev1.SecretList{}, "Role": &rbacv1.RoleList{}, "RoleBinding": &rbacv1.RoleBindingList{},
		"PodDisruptionBudget": &policyv1.PodDisruptionBudgetList{},
	}
	for kind, l := range lists {
		if err := e.k8s.List(ctx, l, client.InNamespace(namespace)); err != nil {
			t.Fatal(err)
		}
		items, _ := apimeta.ExtractList(l)
		for _, it := range items {
			o := it.(client.Object)
			for _, ref := range o.GetOwnerReferences() {
				if ref.UID == uid {
					out = append(out, kind+"/"+o.GetName())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// logTails logs the end of each component's log, which cluster-down deletes.
func logTails(t *testing.T) {
	logs, _ := filepath.Glob(stateDir + "/logs/*.log")
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		t.Logf("the end of %s:\n%s", l, strings.Join(lines[max(0, len(lines)-25):], "\n"))
	}
	nat, _ := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	t.Logf("iptables-save -t nat:\n%s", nat)
}

// checkListeners fails when a process of the cluster listens on an address other than
// loopback or the bridge's: nothing of the cluster may be reachable from the network.
func checkListeners(t *testing.T) {
	ours := map[string]string{}
	for _, p := range clusterProcesses() {
		pid, cmd, _ := strings.Cut(p, " ")
		ours[pid] = cmd
	}
	out, err := exec.Command("ss", "-Hltnup").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) < 7 {
			continue
		}
		local := f[4]
		for _, m := range pidRE.FindAllStringSubmatch(f[6], -1) {
			cmd, ok := ours[m[1]]
			if !ok {
				continue
			}
			n++
			if !strings.HasPrefix(local, "127.0.0.1:") && !strings.HasPrefix(local, bridgeIP+":") {
				t.Errorf("%s listens on %s: %s", m[1], local, cmd)
			}
		}
	}
	if n < 8 {
		t.Errorf("only %d listening sockets of the cluster's processes; the check cannot see them:\n%s", n, out)
	}
	t.Logf("%d listening sockets of the cluster, all on 127.0.0.1 or %s", n, bridgeIP)
}

var pidRE = regexp.MustCompile(`pid=(\d+),`)

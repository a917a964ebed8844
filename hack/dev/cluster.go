package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

// The cluster mode: the same system on a real single-node Kubernetes cluster
// (hack/cluster), where the operator runs as deployed by `make deploy` and the
// authorization server and the example MCP server run as pods. The issuer and the MCP
// URL stay on loopback (plain http is allowed there): a forwarder on 127.0.0.1 passes
// each connection to the Service's cluster IP, which kube-proxy balances over the
// pods. The dev OpenID provider listens on the cluster bridge's address, which both
// the pods and the browser on this machine reach.

const (
	clusterState      = "/var/lib/mcpauth-cluster"
	clusterKubeconfig = clusterState + "/admin.kubeconfig"
	clusterBridgeIP   = "10.88.0.1"
	operatorNamespace = "mcpauth-system"
	operatorName      = "mcpauth-controller-manager"
	mcpServerName     = "mcpserver"
)

// clusterSteps are the steps of the cluster mode, in the place of the envtest ones.
func (d *dev) clusterSteps() []devStep {
	return []devStep{
		{"starting the cluster (hack/cluster: etcd, Kubernetes, containerd)", stepTimeouts.cluster, d.startCluster},
		{"building the images (hack/images) and deploying the operator (make deploy)", stepTimeouts.deploy, d.deployOperator},
		{fmt.Sprintf("starting the dev OpenID provider on %s", d.idpURL()), stepTimeouts.idp, d.startIdP},
		{"applying the OAuthProvider and MCPClient with kubectl", stepTimeouts.apply, d.applyManifests},
		{"waiting for the authorization server's pods (Deployment, Service, probes)", stepTimeouts.kubelet, d.awaitServerPods},
		{fmt.Sprintf("running the example MCP server as a pod, on %s", d.mcpURL()), stepTimeouts.kubelet, d.startMCPServerPod},
	}
}

// clusterCmd runs one of the hack/cluster scripts, its output in the log "cluster".
func (d *dev) clusterCmd(ctx context.Context, script string, args ...string) error {
	w, err := d.logFile("cluster")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(d.o.repo, "hack", "cluster", script), args...)
	cmd.Dir = d.o.repo
	cmd.Stdout, cmd.Stderr = w, w
	// A cluster up.sh starts for us is ours: should this process die without its
	// cleanup, the next cluster-up (or the cluster test) finds it orphaned and undoes it.
	cmd.Env = append(os.Environ(), fmt.Sprintf("MCPAUTH_CLUSTER_OWNER=%d", os.Getpid()))
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return withHint(fmt.Errorf("hack/cluster/%s: %w; the end of %s:\n%s", script, err, d.logPath("cluster"),
			tail(filepath.Join(d.logDir, "cluster.log"), 8)), "see %s; `make cluster-down` cleans up what is left", d.logPath("cluster"))
	}
	return nil
}

// startCluster is step 1: hack/cluster/up.sh, unless a cluster is up already, in which
// case it is used and left running. One left behind by a run that died (stale or
// orphaned, hack/cluster/state.sh) is nobody's: up.sh undoes it and starts ours.
func (d *dev) startCluster(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, filepath.Join(d.o.repo, "hack", "cluster", "state.sh")).Output()
	if err != nil {
		return fmt.Errorf("hack/cluster/state.sh: %w", err)
	}
	if strings.TrimSpace(string(out)) == "up" {
		d.note("a cluster was up already: using it, and leaving it up at the end")
	} else {
		d.onStop("stopping the cluster (make cluster-down)", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			return d.clusterCmd(ctx, "down.sh")
		})
	}
	if err := d.clusterCmd(ctx, "up.sh"); err != nil {
		return err
	}
	d.kubeconfig = clusterKubeconfig
	cfg, err := clientcmd.BuildConfigFromFlags("", d.kubeconfig)
	if err != nil {
		return err
	}
	d.restConfig = cfg
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = oauthv1alpha1.AddToScheme(scheme)
	if d.k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if d.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	d.note("kube-apiserver %s, node Ready; state and logs in %s", cfg.Host, clusterState)
	d.note("kubeconfig    %s", d.kubeconfig)
	return nil
}

// deployOperator is step 2: the images into containerd, then config/default with
// kubectl, as `make deploy` does, and the operator's pod Ready.
func (d *dev) deployOperator(ctx context.Context) error {
	if err := d.clusterCmd(ctx, "images.sh"); err != nil {
		return err
	}
	if err := d.kubectlRun(ctx, "", "apply", "--server-side", "-k", "config/default"); err != nil {
		return err
	}
	// A reused cluster may run an older build under the same tag.
	if err := d.kubectlRun(ctx, "", "-n", operatorNamespace, "rollout", "restart", "deployment/"+operatorName); err != nil {
		return err
	}
	if err := d.kubectlRun(ctx, "", "-n", operatorNamespace, "rollout", "status", "deployment/"+operatorName, "--timeout=120s"); err != nil {
		return withHint(err, "`kubectl --kubeconfig %s -n %s describe pods`", d.kubeconfig, operatorNamespace)
	}
	d.note("images mcpauth:dev, mcpauth-mcpserver:dev loaded; operator %s/%s Ready", operatorNamespace, operatorName)
	return nil
}

// kubectlRun runs kubectl against the cluster; its output goes to the log "kubectl".
func (d *dev) kubectlRun(ctx context.Context, stdin string, args ...string) error {
	w, err := d.logFile("kubectl")
	if err != nil {
		return err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, d.kubectl, append([]string{"--kubeconfig", d.kubeconfig}, args...)...)
	cmd.Dir = d.o.repo
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout = io.MultiWriter(w, &out)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// awaitServerPods is step 5: the operator's Deployment Ready under the real kubelet,
// the provider and the clients Ready, and the loopback issuer forwarded to the Service.
func (d *dev) awaitServerPods(ctx context.Context) error {
	p := d.manifests.provider
	name := p.Name + "-authserver"
	if err := poll(ctx, 500*time.Millisecond, func() error {
		var dep appsv1.Deployment
		if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, &dep); err != nil {
			return err
		}
		if dep.Status.ReadyReplicas < 1 || dep.Status.UpdatedReplicas < dep.Status.Replicas {
			return fmt.Errorf("the Deployment %s has %d Ready pods", name, dep.Status.ReadyReplicas)
		}
		return d.readyErr(ctx, p)
	}); err != nil {
		return withHint(fmt.Errorf("%w%s", err, d.providerStatus(ctx)),
			"`kubectl --kubeconfig %s describe pods`; the operator: `kubectl -n %s logs deploy/%s`", d.kubeconfig, operatorNamespace, operatorName)
	}
	var svc corev1.Service
	if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, &svc); err != nil {
		return err
	}
	if err := d.forward(d.o.authServerPort, fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port), "the authorization server"); err != nil {
		return err
	}
	if err := poll(ctx, 200*time.Millisecond, func() error { return httpStatus(ctx, d.metadataURL(), 200) }); err != nil {
		return err
	}
	var creds corev1.Secret
	if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: introspectionSecret}, &creds); err != nil {
		return withHint(fmt.Errorf("the example MCP server's credentials: %w", err),
			"%s must hold an MCPClient with secretName %s", d.rel(d.o.manifests), introspectionSecret)
	}
	d.introspect = introspectionClient{id: string(creds.Data["client-id"]), secret: string(creds.Data["client-secret"])}
	d.note("pods of deployment/%s Ready; Service %s:%d, forwarded from %s", name, svc.Spec.ClusterIP, svc.Spec.Ports[0].Port, d.issuer())
	d.note("OAuthProvider %s/%s Ready; MCPClients Ready: %s", p.Namespace, p.Name, strings.Join(d.clientNames(), ", "))
	return nil
}

// startMCPServerPod is step 6: examples/mcpserver from its image as a Deployment and
// Service, introspecting at the authorization server's Service.
func (d *dev) startMCPServerPod(ctx context.Context) error {
	p := d.manifests.provider
	var svc corev1.Service
	if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.Name + "-authserver"}, &svc); err != nil {
		return err
	}
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: mcpserver
        image: mcpauth-mcpserver:dev
        imagePullPolicy: Never
        args: [--listen=:8080, --resource-url=%[3]s, --issuer=%[4]s, --introspection-endpoint=http://%[5]s:%[6]d/oauth/introspect,
               --introspection-client-id=%[7]s, --upstream-userinfo-url=%[8]s]
        env:
        - name: MCP_INTROSPECTION_CLIENT_SECRET
          valueFrom: {secretKeyRef: {name: %[9]s, key: client-secret}}
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {app: %[2]s}
  ports: [{name: http, port: 80, targetPort: http}]
`, p.Namespace, mcpServerName, d.mcpURL(), d.issuer(), svc.Spec.ClusterIP, svc.Spec.Ports[0].Port,
		d.introspect.id, d.idp.UserinfoEndpoint, introspectionSecret)
	if err := d.kubectlRun(ctx, manifest, "apply", "-f", "-"); err != nil {
		return err
	}
	if err := d.kubectlRun(ctx, "", "-n", p.Namespace, "rollout", "status", "deployment/"+mcpServerName, "--timeout=60s"); err != nil {
		return withHint(err, "`kubectl --kubeconfig %s -n %s describe pods -l app=%s`", d.kubeconfig, p.Namespace, mcpServerName)
	}
	var msvc corev1.Service
	if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: mcpServerName}, &msvc); err != nil {
		return err
	}
	if err := d.forward(d.o.mcpPort, msvc.Spec.ClusterIP+":80", "the example MCP server"); err != nil {
		return err
	}
	if err := poll(ctx, 200*time.Millisecond, func() error { return d.checkChallenge(ctx) }); err != nil {
		return err
	}
	if err := d.checkIntrospection(ctx); err != nil {
		return err
	}
	d.note("deployment/%s Ready; Service %s:80, forwarded from %s", mcpServerName, msvc.Spec.ClusterIP, d.mcpURL())
	return nil
}

// forward passes connections from 127.0.0.1:port to target until shutdown.
func (d *dev) forward(port int, target, what string) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return withHint(err, "another program holds port %d", port)
	}
	var wg sync.WaitGroup
	stopping := make(chan struct{})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				select {
				case <-stopping:
				default:
					d.componentDied("the forwarder to "+what, err)
				}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				pipe(c, target, stopping)
			}()
		}
	}()
	d.onStop(fmt.Sprintf("closing 127.0.0.1:%d (to %s)", port, what), func() error {
		close(stopping)
		err := l.Close()
		wg.Wait()
		return err
	})
	return nil
}

// pipe copies both ways between c and a new connection to target.
func pipe(c net.Conn, target string, stopping <-chan struct{}) {
	defer c.Close()
	u, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	select {
	case <-done:
	case <-stopping:
	}
}

// clusterManifest moves the dev OpenID provider from loopback to the bridge in a
// manifest: the server's pods reach it there, and plain http there needs
// insecureAllowHTTP.
func clusterManifest(b []byte, idpPort int) []byte {
	from := fmt.Sprintf("http://127.0.0.1:%d", idpPort)
	to := fmt.Sprintf("http://%s:%d", clusterBridgeIP, idpPort)
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(l, []byte("issuerURL: "+from)) {
			indent := l[:len(l)-len(bytes.TrimLeft(l, " "))]
			out = append(out, bytes.ReplaceAll(l, []byte(from), []byte(to)),
				append(append([]byte{}, indent...), "insecureAllowHTTP: true"...))
			continue
		}
		out = append(out, l)
	}
	return bytes.Join(out, []byte("\n"))
}

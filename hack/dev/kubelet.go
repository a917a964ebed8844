package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/app"
	"github.com/mcpauth/mcpauth/internal/devkubelet"
)

// introspectionSecret is the credentials Secret of the MCPClient in
// hack/dev/manifests that the example MCP server introspects tokens with (it has
// introspectUpstream, so its answers carry the user's upstream token).
const introspectionSecret = "mcpserver-credentials"

// introspectionClient is the example MCP server's confidential client, read from the
// Secret the operator wrote for it.
type introspectionClient struct {
	id, secret string
}

// kubelet runs the authorization server from the Deployment the operator rendered,
// and again whenever the operator changes it (a rollout).
type kubelet struct {
	d         *dev
	namespace string
	name      string // the Deployment
	root      string // the pod's file system

	mu         sync.Mutex
	generation int64           // of the Deployment the running server came from
	podDir     string          // where its files are
	pod        *devkubelet.Pod // what the running server was started from
	closed     bool            // shutdown began
	stop       func() error
}

// startKubelet is step 5: wait for the Deployment, materialise its files, run the
// server in process from them, report the Deployment available, and wait for the
// OAuthProvider and the MCPClients to be Ready.
func (d *dev) startKubelet(ctx context.Context) error {
	p := d.manifests.provider
	k := &kubelet{d: d, namespace: p.Namespace, name: p.Name + "-authserver", root: filepath.Join(d.o.dir, "pod")}
	var deploy appsv1.Deployment
	if err := poll(ctx, 200*time.Millisecond, func() error {
		return d.k8s.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: k.name}, &deploy)
	}); err != nil {
		return withHint(fmt.Errorf("no Deployment %s/%s from the operator: %w%s", k.namespace, k.name, err, d.providerStatus(ctx)),
			"see %s and `kubectl --kubeconfig %s describe oap %s`", d.logPath("operator"), d.rel(d.kubeconfig), p.Name)
	}
	if err := k.run(ctx); err != nil {
		return err
	}
	d.onStop("stopping the authorization server", k.shutdown)
	go k.watchRollouts()
	d.note("the Deployment %s/%s's volumes in %s", k.namespace, k.name, d.rel(k.podDir))
	d.note("issuer %s; log %s", d.issuer(), d.logPath("authserver"))

	if err := poll(ctx, 200*time.Millisecond, func() error {
		return d.readyErr(ctx, p)
	}); err != nil {
		return withHint(fmt.Errorf("%w%s", err, d.providerStatus(ctx)),
			"an invalid spec: fix it in %s; otherwise see %s", d.rel(d.o.manifests), d.logPath("operator"))
	}
	d.note("OAuthProvider %s/%s Ready; MCPClients Ready: %s", p.Namespace, p.Name, strings.Join(d.clientNames(), ", "))
	var creds corev1.Secret
	if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: introspectionSecret}, &creds); err != nil {
		return withHint(fmt.Errorf("the example MCP server's credentials: %w", err),
			"%s must hold an MCPClient with secretName %s", d.rel(d.o.manifests), introspectionSecret)
	}
	d.introspect = introspectionClient{id: string(creds.Data["client-id"]), secret: string(creds.Data["client-secret"])}
	return nil
}

// readyErr is nil once the provider and every MCPClient of the manifests are Ready.
func (d *dev) readyErr(ctx context.Context, p *oauthv1alpha1.OAuthProvider) error {
	var got oauthv1alpha1.OAuthProvider
	if err := d.k8s.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
		return err
	}
	if c := meta(got.Status.Conditions); c == nil || c.Status != metav1.ConditionTrue {
		err := fmt.Errorf("the OAuthProvider %s is not Ready", p.Name)
		if c != nil && needsAPerson[c.Reason] {
			return permanent{fmt.Errorf("%w: %s: %s", err, c.Reason, c.Message)}
		}
		return err
	}
	for _, c := range d.manifests.clients {
		var mc oauthv1alpha1.MCPClient
		if err := d.k8s.Get(ctx, client.ObjectKeyFromObject(c), &mc); err != nil {
			return err
		}
		if cond := meta(mc.Status.Conditions); cond == nil || cond.Status != metav1.ConditionTrue {
			msg := "no condition yet"
			if cond != nil {
				msg = cond.Reason + ": " + cond.Message
			}
			err := fmt.Errorf("the MCPClient %s is not Ready (%s)", c.Name, msg)
			if cond != nil && needsAPerson[cond.Reason] {
				return permanent{err}
			}
			return err
		}
	}
	return nil
}

// needsAPerson are Ready reasons that waiting does not fix.
var needsAPerson = map[string]bool{
	oauthv1alpha1.ReasonInvalidSpec:       true,
	oauthv1alpha1.ReasonSecretNotFound:    true,
	oauthv1alpha1.ReasonSecretKeyNotFound: true,
	oauthv1alpha1.ReasonSecretConflict:    true,
	oauthv1alpha1.ReasonProviderNotFound:  true,
}

// permanent marks an error that poll must not retry.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

func meta(conds []metav1.Condition) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == oauthv1alpha1.ConditionReady {
			return &conds[i]
		}
	}
	return nil
}

func (d *dev) clientNames() []string {
	var out []string
	for _, c := range d.manifests.clients {
		out = append(out, c.Name)
	}
	return out
}

// providerStatus describes the provider's Ready condition, for error messages.
func (d *dev) providerStatus(ctx context.Context) string {
	var p oauthv1alpha1.OAuthProvider
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := d.k8s.Get(ctx, client.ObjectKeyFromObject(d.manifests.provider), &p); err != nil {
		return ""
	}
	if c := meta(p.Status.Conditions); c != nil {
		return fmt.Sprintf("\nthe OAuthProvider says Ready=%s %s: %s", c.Status, c.Reason, c.Message)
	}
	return ""
}

// run materialises the current Deployment and starts a server from it, replacing the
// running one. Each generation of the Deployment gets its own directory, and the new
// server is built before the old one stops, as a rolling update would.
func (k *kubelet) run(ctx context.Context) error {
	d := k.d
	var dep appsv1.Deployment
	if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: k.name}, &dep); err != nil {
		return err
	}
	root := filepath.Join(k.root, fmt.Sprintf("generation-%d", dep.Generation))
	_ = os.RemoveAll(root)
	pod, err := devkubelet.Materialize(ctx, d.k8s, k.namespace, k.name, root)
	if err != nil {
		return err
	}
	pod.Config.ListenAddress = fmt.Sprintf("127.0.0.1:%d", d.o.authServerPort)
	w, err := d.logFile("authserver")
	if err != nil {
		return err
	}
	// The app keeps its context for its lifetime (upstream key sets are fetched with
	// it), so it gets its own, ended by stop, not the step's.
	actx, cancel := context.WithCancel(context.Background())
	a, err := app.New(actx, pod.Config, app.Options{
		Getenv: pod.Getenv, Kube: d.clientset.CoreV1().RESTClient(), Logger: slog.New(slog.NewTextHandler(w, nil)),
	})
	if err != nil {
		cancel()
		return withHint(fmt.Errorf("the server does not start from what the operator rendered: %w", err),
			"is the dev OpenID provider up (%s)? see %s", d.idpURL(), d.logPath("idp"))
	}

	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		cancel()
		return errors.New("shutting down")
	}
	if k.stop != nil {
		if err := k.stop(); err != nil {
			fmt.Fprintf(d.out, "kubelet: the old server: %v\n", err)
		}
		k.stop = nil
	}
	if _, err := a.Listen(""); err != nil {
		cancel()
		return withHint(err, "another program took port %d: choose another with --authserver-port", d.o.authServerPort)
	}
	done := make(chan error, 1)
	stopped := false
	go func() {
		err := a.Run(actx)
		done <- err
		k.mu.Lock()
		expected := stopped
		k.mu.Unlock()
		if !expected {
			d.componentDied("the authorization server", err)
		}
	}()
	k.stop = func() error { // called with k.mu held
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			return errors.New("requests still in flight after 5s; going on")
		}
	}
	// The old generations' files go, as the old pods would.
	if old, _ := filepath.Glob(filepath.Join(k.root, "generation-*")); len(old) > 0 {
		for _, o := range old {
			if o != root {
				_ = os.RemoveAll(o)
			}
		}
	}
	k.generation = pod.Deployment.Generation
	k.podDir = root
	k.pod = pod

	if err := poll(ctx, 100*time.Millisecond, func() error {
		return httpStatus(ctx, d.issuer()+"/readyz", http.StatusOK)
	}); err != nil {
		return withHint(fmt.Errorf("the server is not ready: %w", err), "see %s", d.logPath("authserver"))
	}
	return k.markAvailable(ctx)
}

// shutdown stops the server at the end of the run.
func (k *kubelet) shutdown() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true // no more rollouts
	if k.stop == nil {
		return nil
	}
	err := k.stop()
	k.stop = nil
	return err
}

// markAvailable does what the kubelet and the deployment controller would: the pods
// run, so the Deployment is available.
func (k *kubelet) markAvailable(ctx context.Context) error {
	d := k.d
	return poll(ctx, 100*time.Millisecond, func() error {
		var dep appsv1.Deployment
		if err := d.k8s.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: k.name}, &dep); err != nil {
			return err
		}
		replicas := int32(1)
		if dep.Spec.Replicas != nil {
			replicas = *dep.Spec.Replicas
		}
		dep.Status = appsv1.DeploymentStatus{
			ObservedGeneration: dep.Generation, Replicas: replicas, UpdatedReplicas: replicas,
			ReadyReplicas: replicas, AvailableReplicas: replicas,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"},
			},
		}
		return d.k8s.Status().Update(ctx, &dep)
	})
}

// watchRollouts restarts the server when the operator changes the Deployment (a
// changed spec, a rotated Secret), as a rollout would. With the memory store, tokens
// do not survive it, as they would not in a cluster.
func (k *kubelet) watchRollouts() {
	d := k.d
	for {
		time.Sleep(2 * time.Second)
		k.mu.Lock()
		gen, closed := k.generation, k.closed
		k.mu.Unlock()
		if closed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var dep appsv1.Deployment
		err := d.k8s.Get(ctx, client.ObjectKey{Namespace: k.namespace, Name: k.name}, &dep)
		if err != nil || dep.Generation == gen {
			// No rollout: bring changed Secrets to the running pod's files in place,
			// as the kubelet does (a rotated signing key reaches the server so).
			k.mu.Lock()
			pod := k.pod
			k.mu.Unlock()
			if err == nil && pod != nil {
				if err := devkubelet.Refresh(ctx, d.k8s, pod); err != nil {
					fmt.Fprintf(d.out, "kubelet: refreshing the pod's files: %v\n", err)
				}
			}
			cancel()
			continue
		}
		fmt.Fprintf(d.out, "kubelet: the operator changed %s/%s (generation %d): restarting the authorization server ... ", k.namespace, k.name, dep.Generation)
		if err := k.run(ctx); err != nil {
			fmt.Fprintf(d.out, "FAILED: %v\n", err)
			k.mu.Lock()
			k.generation = dep.Generation // do not retry the same one
			k.mu.Unlock()
		} else {
			fmt.Fprintln(d.out, "ok (tokens in the memory store are gone, as with a real rollout)")
		}
		cancel()
	}
}

// poll calls fn until it succeeds, ctx ends, or it returns a permanent error; the
// error is fn's last.
func poll(ctx context.Context, every time.Duration, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(every):
		}
	}
}

// httpStatus is nil when GET u answers want.
func httpStatus(ctx context.Context, u string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}

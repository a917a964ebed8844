// Command operatorbench measures the operator at scale against envtest (a real
// kube-apiserver and etcd): it creates -providers OAuthProviders and -clients MCPClients
// at once, plays the kubelet and Deployment controller (it reports each authorization
// server Deployment available, as they would), and times until every object is Ready.
// Then it restarts the manager, which lists and reconciles everything again (what a
// resync does), and counts the writes that makes: there must be none.
//
// The manager is the real binary (cmd/manager), in a process of its own, so its peak
// resident memory (VmHWM) is its own. Its API calls are counted from the apiserver's
// audit log, where it has a user of its own; no-op writes count too.
//
// `make bench` runs it. It prints one line starting with "operator:" and writes
// OUT/operator.json.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/internal/testutil/kubeenv"
)

const (
	namespace   = "bench"
	managerUser = "mcpauth-manager"
)

type options struct {
	manager   string
	out       string
	providers int
	clients   int
	target    time.Duration
	limit     time.Duration
}

func main() {
	o := &options{}
	flag.StringVar(&o.manager, "manager", "bin/manager", "the manager binary (go build ./cmd/manager)")
	flag.StringVar(&o.out, "out", "bin/bench", "directory for operator.json and the manager's logs")
	flag.IntVar(&o.providers, "providers", 50, "OAuthProviders to create")
	flag.IntVar(&o.clients, "clients", 1000, "MCPClients to create, spread evenly over the providers")
	flag.DurationVar(&o.target, "target", 60*time.Second, "time within which everything must be Ready")
	flag.DurationVar(&o.limit, "limit", 180*time.Second, "give up waiting for Ready after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "operatorbench:", err)
		os.Exit(1)
	}
}

// result is what operator.json holds.
type result struct {
	Providers        int            `json:"providers"`
	Clients          int            `json:"clients"`
	CreateSeconds    float64        `json:"create_seconds"`
	ReadySeconds     float64        `json:"ready_seconds"`
	AllReady         bool           `json:"all_ready"`
	TargetSeconds    float64        `json:"target_seconds"`
	SetupCalls       map[string]int `json:"manager_calls_to_ready"`
	ResyncReconciles float64        `json:"resync_reconciles"`
	ResyncSeconds    float64        `json:"resync_seconds"`
	ResyncCalls      map[string]int `json:"manager_calls_in_resync"`
	ResyncWrites     int            `json:"resync_writes"`
	ResyncWriteList  []string       `json:"resync_write_list,omitempty"`
	PeakRSSMiB       float64        `json:"manager_peak_rss_mib"`
	ResyncPeakRSSMiB float64        `json:"manager_resync_peak_rss_mib"`
	PeakHeapMiB      float64        `json:"manager_peak_heap_inuse_mib"`
}

func run(ctx context.Context, o *options) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mcpauth-operatorbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	manager, err := filepath.Abs(o.manager)
	if err != nil {
		return err
	}

	env, err := kubeenv.New()
	if err != nil {
		return err
	}
	// The apiserver logs every call of the manager's user (metadata only).
	policy := filepath.Join(dir, "audit-policy.yaml")
	auditLog := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(policy, []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["`+managerUser+`"]
- level: None
`), 0o600); err != nil {
		return err
	}
	env.ControlPlane.GetAPIServer().Configure().
		Append("audit-policy-file", policy).
		Append("audit-log-path", auditLog).
		Append("audit-log-mode", "blocking")
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start envtest: %w", err)
	}
	defer func() { _ = env.Stop() }()
	user, err := env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := oauthv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	res := result{Providers: o.providers, Clients: o.clients, TargetSeconds: o.target.Seconds()}
	mgr, err := startManager(ctx, manager, kubeconfig, o.out, "manager")
	if err != nil {
		return err
	}
	defer mgr.stop()

	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "github-oauth", Namespace: namespace},
		StringData: map[string]string{"client-secret": "bench-secret"}}); err != nil {
		return err
	}

	kctx, stopKubelet := context.WithCancel(ctx)
	kubeletDone := make(chan struct{})
	go func() { defer close(kubeletDone); kubelet(kctx, c) }()

	fmt.Printf("operator: creating %d OAuthProviders and %d MCPClients at once\n", o.providers, o.clients)
	start := time.Now()
	if err := createAll(ctx, c, o); err != nil {
		stopKubelet()
		return err
	}
	res.CreateSeconds = time.Since(start).Seconds()
	res.AllReady, err = waitReady(ctx, c, o, start)
	res.ReadySeconds = time.Since(start).Seconds()
	stopKubelet()
	<-kubeletDone
	if err != nil {
		return err
	}
	time.Sleep(time.Second) // let the manager finish what it was doing
	res.PeakRSSMiB = float64(memKiB(mgr.pid(), "VmHWM")) / 1024
	res.PeakHeapMiB = mgr.peakHeap() / (1 << 20)
	mgr.stop()
	calls, _, _, err := auditCalls(auditLog, 0)
	if err != nil {
		return err
	}
	res.SetupCalls = calls
	offset := fileSize(auditLog)

	// Resync: a new manager process lists and reconciles everything.
	fmt.Println("operator: restarting the manager; it reconciles every object again")
	rstart := time.Now()
	mgr2, err := startManager(ctx, manager, kubeconfig, o.out, "manager-resync")
	if err != nil {
		return err
	}
	defer mgr2.stop()
	res.ResyncReconciles, err = waitReconciled(ctx, mgr2, float64(o.providers+o.clients))
	res.ResyncSeconds = time.Since(rstart).Seconds()
	if err != nil {
		return err
	}
	res.ResyncPeakRSSMiB = float64(memKiB(mgr2.pid(), "VmHWM")) / 1024
	mgr2.stop()
	time.Sleep(500 * time.Millisecond)
	calls, writes, list, err := auditCalls(auditLog, offset)
	if err != nil {
		return err
	}
	res.ResyncCalls, res.ResyncWrites, res.ResyncWriteList = calls, writes, list

	js, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "operator.json"), js, 0o644); err != nil {
		return err
	}
	verdict := "met"
	if !res.AllReady || res.ReadySeconds > o.target.Seconds() || res.ResyncWrites > 0 {
		verdict = "NOT met"
	}
	fmt.Printf("operator: manager calls until Ready: %s\n", callString(res.SetupCalls))
	fmt.Printf("operator: manager calls in the resync (%.0f reconciles in %.1fs): %s\n", res.ResyncReconciles, res.ResyncSeconds, callString(res.ResyncCalls))
	for _, w := range res.ResyncWriteList {
		fmt.Println("operator: resync write:", w)
	}
	fmt.Printf("operator: providers=%d clients=%d created_in=%.1fs all_ready=%v ready_in=%.1fs (target %.0fs) resync_writes=%d manager_peak_rss_mib=%.0f manager_peak_heap_mib=%.0f resync_peak_rss_mib=%.0f: targets %s\n",
		res.Providers, res.Clients, res.CreateSeconds, res.AllReady, res.ReadySeconds, o.target.Seconds(), res.ResyncWrites,
		res.PeakRSSMiB, res.PeakHeapMiB, res.ResyncPeakRSSMiB, verdict)
	return nil
}

func callString(m map[string]int) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// createAll creates the providers and clients from a few goroutines, as fast as the
// apiserver takes them; clients are spread round-robin over the providers.
func createAll(ctx context.Context, c client.Client, o *options) error {
	var objs []client.Object
	for i := range o.providers {
		objs = append(objs, &oauthv1alpha1.OAuthProvider{
			ObjectMeta: metav1.ObjectMeta{Name: providerName(i), Namespace: namespace},
			Spec: oauthv1alpha1.OAuthProviderSpec{
				Type:            oauthv1alpha1.ProviderGitHub,
				ClientID:        "client-id",
				ClientSecretRef: oauthv1alpha1.SecretKeyReference{Name: "github-oauth", Key: "client-secret"},
				Server:          oauthv1alpha1.ServerSpec{URL: fmt.Sprintf("https://auth-%d.example.com", i)},
			},
		})
	}
	for i := range o.clients {
		method := oauthv1alpha1.TokenEndpointAuthMethod("")
		if i%2 == 1 {
			method = "client_secret_basic" // half confidential, half public
		}
		objs = append(objs, &oauthv1alpha1.MCPClient{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("client-%04d", i), Namespace: namespace},
			Spec: oauthv1alpha1.MCPClientSpec{
				ProviderRef:             oauthv1alpha1.LocalObjectReference{Name: providerName(i % o.providers)},
				RedirectURIs:            []string{"http://127.0.0.1/callback"},
				TokenEndpointAuthMethod: method,
			},
		})
	}
	work := make(chan client.Object)
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for obj := range work {
				if err := c.Create(ctx, obj); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("create %s: %w", obj.GetName(), err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, obj := range objs {
		work <- obj
	}
	close(work)
	wg.Wait()
	return firstErr
}

func providerName(i int) string { return fmt.Sprintf("provider-%02d", i) }

// kubelet plays the kubelet and the Deployment controller: every Deployment whose
// status does not yet say its replicas are available is reported rolled out and
// available, as the test suite's makeAvailable does.
func kubelet(ctx context.Context, c client.Client) {
	for ctx.Err() == nil {
		var ds appsv1.DeploymentList
		if err := c.List(ctx, &ds, client.InNamespace(namespace)); err == nil {
			for i := range ds.Items {
				d := &ds.Items[i]
				n := int32(1)
				if d.Spec.Replicas != nil {
					n = *d.Spec.Replicas
				}
				if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == n && d.Status.UpdatedReplicas == n {
					continue
				}
				d.Status = appsv1.DeploymentStatus{
					ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
					Conditions: []appsv1.DeploymentCondition{{
						Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
						LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
					}},
				}
				_ = c.Status().Update(ctx, d) // a conflict is retried on the next pass
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitReady polls until every provider and client is Ready, printing progress.
func waitReady(ctx context.Context, c client.Client, o *options, start time.Time) (bool, error) {
	var printed time.Time
	for {
		var ps oauthv1alpha1.OAuthProviderList
		var cs oauthv1alpha1.MCPClientList
		if err := c.List(ctx, &ps, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		if err := c.List(ctx, &cs, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		pr, cr := 0, 0
		for _, p := range ps.Items {
			if meta.IsStatusConditionTrue(p.Status.Conditions, oauthv1alpha1.ConditionReady) {
				pr++
			}
		}
		for _, cl := range cs.Items {
			if meta.IsStatusConditionTrue(cl.Status.Conditions, oauthv1alpha1.ConditionReady) {
				cr++
			}
		}
		el := time.Since(start)
		line := fmt.Sprintf("operator: %5.1fs  providers ready %d/%d  clients ready %d/%d", el.Seconds(), pr, o.providers, cr, o.clients)
		if pr == o.providers && cr == o.clients {
			fmt.Println(line)
			return true, nil
		}
		if time.Since(printed) >= 5*time.Second {
			fmt.Println(line)
			printed = time.Now()
		}
		if el > o.limit {
			fmt.Println(line)
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// manager is a running manager process.
type manager struct {
	cmd     *exec.Cmd
	done    chan struct{}
	metrics string
	heap    atomic.Uint64 // peak go_memstats_heap_inuse_bytes seen
	stopped sync.Once
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startManager(ctx context.Context, bin, kubeconfig, out, name string) (*manager, error) {
	metrics, err := freePort()
	if err != nil {
		return nil, err
	}
	probe, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(out, "operatorbench-"+name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--metrics-bind-address", metrics,
		"--health-probe-bind-address", probe, "--authserver-image", "example.com/mcpauth:bench")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	m := &manager{cmd: cmd, done: make(chan struct{}), metrics: "http://" + metrics + "/metrics"}
	go func() { _ = cmd.Wait(); logf.Close(); close(m.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("the manager exited; see %s", logf.Name())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("the manager did not become ready; see %s", logf.Name())
		}
	}
	go m.sampleHeap()
	return m, nil
}

func (m *manager) pid() int { return m.cmd.Process.Pid }

func (m *manager) stop() {
	m.stopped.Do(func() {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	})
}

// sampleHeap reads the manager's heap in use from its metrics every 200 ms.
func (m *manager) sampleHeap() {
	for {
		select {
		case <-m.done:
			return
		case <-time.After(200 * time.Millisecond):
		}
		v, err := metricSum(m.metrics, "go_memstats_heap_inuse_bytes")
		if err != nil {
			continue
		}
		for {
			old := m.heap.Load()
			if uint64(v) <= old || m.heap.CompareAndSwap(old, uint64(v)) {
				break
			}
		}
	}
}

func (m *manager) peakHeap() float64 { return float64(m.heap.Load()) }

// metricSum adds up every series of a metric on a Prometheus text endpoint.
func metricSum(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, name) || (len(l) > len(name) && l[len(name)] != '{' && l[len(name)] != ' ') {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, errors.New(name + " not found")
	}
	return sum, nil
}

// waitReconciled waits until the manager has reconciled at least n objects and then
// stayed idle for two seconds.
func waitReconciled(ctx context.Context, m *manager, n float64) (float64, error) {
	deadline := time.Now().Add(120 * time.Second)
	var last float64
	quietSince := time.Now()
	for time.Now().Before(deadline) {
		v, _ := metricSum(m.metrics, "controller_runtime_reconcile_total")
		if v != last {
			last, quietSince = v, time.Now()
		}
		if v >= n && time.Since(quietSince) > 2*time.Second {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-m.done:
			return v, errors.New("the manager exited during the resync")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return last, fmt.Errorf("the manager reconciled %.0f objects in 120 s, want %.0f", last, n)
}

// auditCalls counts the manager's calls in the audit log from offset on, by verb, and
// lists its writes.
func auditCalls(path string, offset int64) (map[string]int, int, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, 0, nil, err
	}
	calls := map[string]int{}
	writes := 0
	var list []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct {
			Stage string `json:"stage"`
			Verb  string `json:"verb"`
			User  struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
				Name        string `json:"name"`
			} `json:"objectRef"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Stage != "ResponseComplete" || ev.User.Username != managerUser {
			continue
		}
		calls[ev.Verb]++
		switch ev.Verb {
		case "create", "update", "patch", "delete", "deletecollection":
			writes++
			res := ev.ObjectRef.Resource
			if ev.ObjectRef.Subresource != "" {
				res += "/" + ev.ObjectRef.Subresource
			}
			if len(list) < 20 {
				list = append(list, ev.Verb+" "+res+" "+ev.ObjectRef.Name)
			}
		}
	}
	return calls, writes, list, sc.Err()
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// memKiB reads a field of /proc/PID/status, in KiB.
func memKiB(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

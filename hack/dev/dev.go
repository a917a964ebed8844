package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// totalSteps is the number shown in "[n/7]".
const totalSteps = 7

// The dev user at the dev OpenID provider.
const (
	devUserLogin    = "dev"
	devUserPassword = "dev"
	devUserSub      = "dev"
	devUserEmail    = "dev@example.com"
	devUserName     = "Dev User"
)

// dev is one run of `make dev`: what it started, and how to stop it.
type dev struct {
	o           *options
	out         io.Writer
	cancel      context.CancelFunc // ends the run (a component died)
	interrupted atomic.Bool

	mu       sync.Mutex
	cleanups []cleanup
	notes    []string   // lines printed under the current step once it is done
	died     chan error // a component that stopped on its own
	// stepCancel ends the step in progress when a component dies.
	stepCancel context.CancelFunc

	logDir string
	logs   map[string]*os.File

	// What the steps produce, for the steps after them.
	manifests  *devManifests
	assets     string // KUBEBUILDER_ASSETS
	kubectl    string
	restConfig *rest.Config
	kubeconfig string
	k8s        client.Client
	clientset  kubernetes.Interface
	idp        *idpInfo
	introspect introspectionClient
}

// cleanup is one thing to stop, in reverse order of starting.
type cleanup struct {
	name string
	fn   func() error
}

// hinted is an error with advice for the person at the terminal.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

// withHint attaches advice to err (nil stays nil).
func withHint(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: fmt.Sprintf(format, args...)}
}

func newDev(o *options, out io.Writer, cancel context.CancelFunc) *dev {
	return &dev{
		o: o, out: out, cancel: cancel,
		died:   make(chan error, 8),
		logDir: filepath.Join(o.dir, "logs"),
		logs:   map[string]*os.File{},
	}
}

// rel shows a path relative to the repository when it is inside it.
func (d *dev) rel(p string) string {
	if r, err := filepath.Rel(d.o.repo, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func (d *dev) issuer() string { return fmt.Sprintf("http://127.0.0.1:%d", d.o.authServerPort) }
func (d *dev) idpURL() string {
	if d.o.mode == "cluster" {
		// The server's pods reach the provider on the bridge; so does the browser here.
		return fmt.Sprintf("http://%s:%d", clusterBridgeIP, d.o.idpPort)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", d.o.idpPort)
}
func (d *dev) mcpURL() string { return fmt.Sprintf("http://127.0.0.1:%d/mcp", d.o.mcpPort) }
func (d *dev) metadataURL() string {
	return d.issuer() + "/.well-known/oauth-authorization-server"
}

// note queues a line to print under the step in progress.
func (d *dev) note(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.notes = append(d.notes, fmt.Sprintf(format, args...))
}

// onStop registers fn to run at shutdown.
func (d *dev) onStop(name string, fn func() error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cleanups = append(d.cleanups, cleanup{name, fn})
}

// componentDied reports a component that stopped while it should be running: the
// step in progress fails with its error, or once everything is up, the run ends.
func (d *dev) componentDied(name string, err error) {
	if err == nil {
		err = errors.New("exited")
	}
	var h *hinted
	if errors.As(err, &h) {
		err = &hinted{err: fmt.Errorf("%s stopped: %w", name, h.err), hint: h.hint}
	} else {
		err = fmt.Errorf("%s stopped: %w", name, err)
	}
	select {
	case d.died <- err:
	default:
	}
	d.mu.Lock()
	stepCancel := d.stepCancel
	d.mu.Unlock()
	if stepCancel != nil {
		stepCancel()
	}
	d.cancel()
}

// deathDuring returns the error of a component that died, if one did.
func (d *dev) deathDuring() error {
	select {
	case err := <-d.died:
		return err
	default:
		return nil
	}
}

// logFile opens (truncating) the log of one component under the log directory; with
// -v it is copied to stderr too.
func (d *dev) logFile(name string) (io.Writer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.logs[name]
	if !ok {
		var err error
		if f, err = os.OpenFile(filepath.Join(d.logDir, name+".log"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600); err != nil {
			return nil, err
		}
		d.logs[name] = f
	}
	if d.o.verbose {
		return io.MultiWriter(f, prefixWriter{name, os.Stderr}), nil
	}
	return f, nil
}

func (d *dev) logPath(name string) string { return d.rel(filepath.Join(d.logDir, name+".log")) }

// prefixWriter writes each chunk with the component's name in front, for -v.
type prefixWriter struct {
	name string
	w    io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			if _, err := fmt.Fprintf(p.w, "%-14s| %s", p.name, line); err != nil {
				return 0, err
			}
		}
	}
	return len(b), nil
}

// step runs one numbered step with its timeout and reports how it went.
func (d *dev) step(ctx context.Context, n int, title string, timeout time.Duration, fn func(context.Context) error) error {
	fmt.Fprintf(d.out, "[%d/%d] %s ... ", n, totalSteps, title)
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d.mu.Lock()
	d.stepCancel = cancel
	d.mu.Unlock()
	err := fn(sctx)
	d.mu.Lock()
	d.stepCancel = nil
	d.mu.Unlock()
	if died := d.deathDuring(); died != nil {
		// What the step saw (a cancelled wait) matters less than why.
		err = died
	}
	took := time.Since(start).Round(100 * time.Millisecond)
	d.mu.Lock()
	notes := d.notes
	d.notes = nil
	d.mu.Unlock()
	if err == nil {
		fmt.Fprintf(d.out, "ok (%s)\n", took)
		for _, l := range notes {
			fmt.Fprintf(d.out, "      %s\n", l)
		}
		return nil
	}
	switch {
	case d.interrupted.Load():
		fmt.Fprintf(d.out, "interrupted (%s)\n", took)
		return err
	case errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		fmt.Fprintf(d.out, "FAILED: no success within %s\n", timeout)
	default:
		fmt.Fprintf(d.out, "FAILED (%s)\n", took)
	}
	d.explain(err)
	return err
}

// explain prints an error and its hint.
func (d *dev) explain(err error) {
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "  error: %s\n", indent(err.Error(), "         "))
	var h *hinted
	if errors.As(err, &h) && h.hint != "" {
		fmt.Fprintf(d.out, "  hint:  %s\n", indent(h.hint, "         "))
	}
	fmt.Fprintf(d.out, "  logs:  %s/\n\n", d.rel(d.logDir))
}

func indent(s, prefix string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// devStep is one numbered step of up.
type devStep struct {
	title   string
	timeout time.Duration
	fn      func(context.Context) error
}

// up runs the preflight checks and the seven steps; 0 means everything is running.
func (d *dev) up(ctx context.Context) int {
	fmt.Fprintf(d.out, "mcpauth dev: the whole system on this machine; Ctrl-C stops it.\n")
	if d.o.mode == "cluster" {
		fmt.Fprintf(d.out, "      mode: cluster (a real single-node Kubernetes cluster; the operator and the servers run as pods)\n")
	} else {
		fmt.Fprintf(d.out, "      mode: envtest (kube-apiserver and etcd; the operator and the server run in this process)\n")
	}
	fmt.Fprintf(d.out, "      state and logs in %s/\n", d.rel(d.o.dir))
	fmt.Fprintf(d.out, "checking ports, tools and manifests ... ")
	start := time.Now()
	if err := d.preflight(ctx); err != nil {
		fmt.Fprintf(d.out, "FAILED\n")
		d.explain(err)
		return 1
	}
	fmt.Fprintf(d.out, "ok (%s)\n", time.Since(start).Round(100*time.Millisecond))
	d.mu.Lock()
	for _, l := range d.notes {
		fmt.Fprintf(d.out, "      %s\n", l)
	}
	d.notes = nil
	d.mu.Unlock()

	steps := []devStep{
		{"starting the local control plane (kube-apiserver, etcd, CRDs)", stepTimeouts.controlPlane, d.startControlPlane},
		{"starting the operator", stepTimeouts.operator, d.startOperator},
		{fmt.Sprintf("starting the dev OpenID provider on %s", d.idpURL()), stepTimeouts.idp, d.startIdP},
		{"applying the OAuthProvider and MCPClient with kubectl", stepTimeouts.apply, d.applyManifests},
		{"running the authorization server the operator rendered (acting as the kubelet)", stepTimeouts.kubelet, d.startKubelet},
		{fmt.Sprintf("starting the example MCP server on %s", d.mcpURL()), stepTimeouts.mcp, d.startMCPServer},
	}
	if d.o.mode == "cluster" {
		steps = d.clusterSteps()
	}
	for i, s := range steps {
		if err := d.step(ctx, i+1, s.title, s.timeout, s.fn); err != nil {
			if d.interrupted.Load() {
				return 130
			}
			return 1
		}
	}
	fmt.Fprintf(d.out, "[%d/%d] ready\n", totalSteps, totalSteps)
	d.printReady()
	return 0
}

// wait blocks until a signal or a component's death.
func (d *dev) wait(ctx context.Context) int {
	select {
	case err := <-d.died:
		fmt.Fprintf(d.out, "\na component stopped on its own; stopping everything.\n")
		d.explain(err)
		return 1
	case <-ctx.Done():
		if err := d.deathDuring(); err != nil {
			fmt.Fprintf(d.out, "\na component stopped on its own; stopping everything.\n")
			d.explain(err)
			return 1
		}
		return 0
	}
}

// down stops everything in reverse order, then makes sure no child process is left.
func (d *dev) down() {
	d.mu.Lock()
	cs := d.cleanups
	d.cleanups = nil
	d.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		fmt.Fprintf(d.out, "%s ... ", c.name)
		start := time.Now()
		if err := c.fn(); err != nil {
			fmt.Fprintf(d.out, "%v (%s)\n", err, time.Since(start).Round(100*time.Millisecond))
		} else {
			fmt.Fprintf(d.out, "ok (%s)\n", time.Since(start).Round(100*time.Millisecond))
		}
	}
	if left := killChildren(syscall.SIGKILL); len(left) > 0 {
		fmt.Fprintf(d.out, "killed processes that were still running: %s\n", strings.Join(left, ", "))
	} else {
		fmt.Fprintln(d.out, "stopped: no process left behind")
	}
	for _, f := range d.logs {
		_ = f.Close()
	}
}

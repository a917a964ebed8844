// Command dev is `make dev`: the whole of mcpauth on one machine with no cluster, until
// Ctrl-C. It starts, step by step,
//
//  1. a local control plane (envtest: a real kube-apiserver and etcd) with the CRDs,
//     and writes a kubeconfig for it;
//  2. the operator (controllers.SetupWithManager) in process;
//  3. a dev upstream OpenID provider (oidc-provider from npm, the end-to-end test's
//     test/e2e/node/upstream-idp.mjs) with a dev user;
//  4. an OAuthProvider, its upstream client Secret and two MCPClients (one for MCP
//     clients, one for the example MCP server, with introspectUpstream), applied with
//     kubectl from hack/dev/manifests;
//  5. the authorization server, in process, from exactly the Deployment, ConfigMap and
//     Secrets the operator rendered (internal/devkubelet acts as the kubelet);
//  6. the example MCP server (examples/mcpserver/server);
//
// then prints the URLs and how to connect a client.
//
// That is the envtest mode. In the cluster mode (--mode cluster, which hack/dev.sh
// chooses where the machine can run a Kubernetes node) the steps are instead: the dev
// cluster (hack/cluster/up.sh); the images without Docker and the operator deployed
// from config/default; the dev OpenID provider on the cluster bridge; the manifests;
// the authorization server's pods under the real kubelet; the example MCP server as a
// pod. The issuer and MCP URLs stay on loopback, forwarded to the Services (cluster.go). A failed step says what failed and
// how to fix it; Ctrl-C (or SIGTERM) stops everything it started.
//
// Ports are fixed by default so URLs stay the same across runs; flags (or the
// environment variables named in -help) change them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Default ports: the manifests in hack/dev/manifests name the URLs built from them.
const (
	defaultAuthServerPort = 9000
	defaultMCPPort        = 9100
	defaultIdPPort        = 9400
)

// options are the command line.
type options struct {
	repo           string // the repository's top directory
	dir            string // state: kubeconfig, pod files, logs, rendered manifests
	authServerPort int
	mcpPort        int
	idpPort        int
	node           string
	idpScript      string
	manifests      string
	verbose        bool
	// mode is "envtest" (a control plane without a kubelet; the server runs in
	// process) or "cluster" (a real single-node cluster, hack/cluster).
	mode string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	repo, err := repoRoot()
	if err != nil {
		return nil, err
	}
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{repo: repo}
	fs.StringVar(&o.dir, "dir", envString("MCPAUTH_DEV_DIR", filepath.Join(repo, "bin", "dev")),
		"directory for the kubeconfig, the pod's files and the logs ($MCPAUTH_DEV_DIR)")
	fs.IntVar(&o.authServerPort, "authserver-port", envInt("MCPAUTH_DEV_AUTHSERVER_PORT", defaultAuthServerPort),
		"loopback port of the authorization server, its issuer http://127.0.0.1:PORT ($MCPAUTH_DEV_AUTHSERVER_PORT)")
	fs.IntVar(&o.mcpPort, "mcp-port", envInt("MCPAUTH_DEV_MCP_PORT", defaultMCPPort),
		"loopback port of the example MCP server ($MCPAUTH_DEV_MCP_PORT)")
	fs.IntVar(&o.idpPort, "idp-port", envInt("MCPAUTH_DEV_IDP_PORT", defaultIdPPort),
		"loopback port of the dev OpenID provider ($MCPAUTH_DEV_IDP_PORT)")
	fs.StringVar(&o.node, "node", envString("MCPAUTH_DEV_NODE", "node"), "the Node.js binary ($MCPAUTH_DEV_NODE)")
	fs.StringVar(&o.idpScript, "idp-script", filepath.Join(repo, "test", "e2e", "node", "upstream-idp.mjs"),
		"the dev OpenID provider's script (oidc-provider)")
	fs.StringVar(&o.manifests, "manifests", filepath.Join(repo, "hack", "dev", "manifests"),
		"directory of the manifests applied with kubectl")
	fs.StringVar(&o.mode, "mode", envString("MCPAUTH_DEV_MODE", "envtest"),
		"envtest, or cluster: a real single-node Kubernetes cluster (hack/cluster) where the operator and the servers run as pods ($MCPAUTH_DEV_MODE; make dev chooses)")
	fs.BoolVar(&o.verbose, "v", os.Getenv("MCPAUTH_DEV_VERBOSE") != "",
		"also copy every component's log to stderr ($MCPAUTH_DEV_VERBOSE)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, p := range []struct {
		flag string
		port int
	}{{"--authserver-port", o.authServerPort}, {"--mcp-port", o.mcpPort}, {"--idp-port", o.idpPort}} {
		if p.port <= 0 || p.port > 65535 {
			return nil, fmt.Errorf("%s: %d is not a port", p.flag, p.port)
		}
	}
	if o.mode != "envtest" && o.mode != "cluster" {
		return nil, fmt.Errorf("--mode: %q is neither envtest nor cluster", o.mode)
	}
	if o.authServerPort == o.mcpPort || o.authServerPort == o.idpPort || o.mcpPort == o.idpPort {
		return nil, errors.New("--authserver-port, --mcp-port and --idp-port must differ")
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return nil, err
	}
	return o, nil
}

func envString(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v := os.Getenv(key); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "dev: ignoring $%s=%q: not a number\n", key, v)
	}
	return def
}

// repoRoot finds the repository from the working directory (make runs in it), so the
// binary works wherever it was built.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && isOurModule(b) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run this from inside the mcpauth repository (no go.mod of github.com/mcpauth/mcpauth above %s)", dir)
		}
	}
}

func isOurModule(gomod []byte) bool {
	const want = "module github.com/mcpauth/mcpauth\n"
	return len(gomod) >= len(want) && string(gomod[:len(want)]) == want
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dev: %v\n", err)
		os.Exit(2)
	}
	os.Exit(run(o))
}

// run brings the system up, waits for a signal or a component's death, and tears it
// down. Its result is the exit code: 0 after Ctrl-C once ready, 1 when something
// failed, 130 when interrupted before ready.
func run(o *options) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := newDev(o, os.Stdout, cancel)

	// The first signal stops everything in order; a second one kills what is left.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		d.interrupted.Store(true)
		fmt.Fprintf(d.out, "\n%s: stopping everything (again to force)\n", signalName(s))
		cancel()
		<-sigs
		fmt.Fprintln(d.out, "forced: killing what is left")
		killChildren(syscall.SIGKILL)
		os.Exit(1)
	}()

	code := d.up(ctx)
	if code == 0 {
		code = d.wait(ctx)
	}
	d.down()
	if code == 0 && !d.interrupted.Load() {
		code = 1
	}
	return code
}

func signalName(s os.Signal) string {
	if s == os.Interrupt {
		return "interrupt"
	}
	return s.String()
}

// stepTimeouts bound each step; the first start of a control plane on a slow machine
// takes the longest.
var stepTimeouts = struct {
	controlPlane, operator, idp, apply, kubelet, mcp, cluster, deploy time.Duration
}{
	// The first start builds the Kubernetes components (cached) and the images.
	cluster:      30 * time.Minute,
	deploy:       15 * time.Minute,
	controlPlane: 3 * time.Minute,
	operator:     time.Minute,
	idp:          time.Minute,
	apply:        time.Minute,
	kubelet:      2 * time.Minute,
	mcp:          30 * time.Second,
}

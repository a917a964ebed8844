package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/mcpauth/mcpauth/internal/testutil/kubeenv"
)

// preflight checks what can be checked before anything starts, so a missing tool or a
// taken port fails in a second with advice rather than after the control plane.
func (d *dev) preflight(ctx context.Context) error {
	if err := os.MkdirAll(d.logDir, 0o700); err != nil {
		return err
	}
	unlock, err := lockDir(d.o.dir)
	if err != nil {
		return withHint(err, "stop it (Ctrl-C in its terminal), or use another --dir and other ports")
	}
	d.onStop("releasing "+d.rel(d.o.dir), func() error {
		unlock()
		return nil
	})
	d.onStop("removing "+d.rel(d.pidfile())+" and "+d.rel(d.envFile()), func() error {
		for _, f := range []string{d.pidfile(), d.envFile()} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	if left := stopLeftovers(d.pidfile()); len(left) > 0 {
		d.note("stopped processes an earlier run left behind (it was killed): %s", strings.Join(left, ", "))
	}

	ports := []struct {
		port       int
		what, flag string
	}{
		{d.o.authServerPort, "the authorization server", "--authserver-port (or MCPAUTH_DEV_AUTHSERVER_PORT)"},
		{d.o.mcpPort, "the example MCP server", "--mcp-port (or MCPAUTH_DEV_MCP_PORT)"},
		{d.o.idpPort, "the dev OpenID provider", "--idp-port (or MCPAUTH_DEV_IDP_PORT)"},
	}
	if d.o.mode == "cluster" {
		ports = ports[:2] // the provider listens on the bridge, which the cluster makes
	}
	for _, p := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", p.port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return withHint(fmt.Errorf("port %d, for %s, is taken: %w", p.port, p.what, err),
				"see what holds it with `ss -ltnp 'sport = :%d'` and stop it, or choose another port with %s", p.port, p.flag)
		}
		_ = l.Close()
	}

	nodeVersion, err := exec.CommandContext(ctx, d.o.node, "--version").Output()
	if err != nil {
		return withHint(fmt.Errorf("node (%s): %w", d.o.node, err),
			"install Node.js 20.19 or later with npm (https://nodejs.org, or Debian's nodejs where it is recent enough), or name it with --node")
	}
	if _, err := os.Stat(d.o.idpScript); err != nil {
		return withHint(fmt.Errorf("the dev OpenID provider's script: %w", err), "--idp-script names it")
	}
	modules := filepath.Join(filepath.Dir(d.o.idpScript), "node_modules", "oidc-provider")
	if _, err := os.Stat(modules); err != nil {
		return withHint(fmt.Errorf("%s is missing: the npm packages are not installed", d.rel(modules)),
			"run `make install-deps` (or `npm ci --prefix %s`)", d.rel(filepath.Dir(d.o.idpScript)))
	}
	d.note("node %s, oidc-provider from %s", strings.TrimSpace(string(nodeVersion)), d.rel(filepath.Dir(modules)))

	var rewrite func([]byte) []byte
	if d.o.mode == "cluster" {
		if d.kubectl, err = clusterKubectl(); err != nil {
			return withHint(err, "run `make cluster-assets`")
		}
		rewrite = func(b []byte) []byte { return clusterManifest(b, d.o.idpPort) }
	} else if err := d.envtestAssets(); err != nil {
		return err
	}

	d.manifests, err = loadManifests(d.o.manifests, filepath.Join(d.o.dir, "manifests"), map[int]int{
		defaultAuthServerPort: d.o.authServerPort, defaultMCPPort: d.o.mcpPort, defaultIdPPort: d.o.idpPort,
	}, rewrite)
	if err == nil {
		err = d.manifests.check(d.issuer(), d.idpURL())
	}
	if err != nil {
		return withHint(err, "fix the manifests in %s", d.rel(d.o.manifests))
	}
	return nil
}

// clusterKubectl is the kubectl built with the cluster's components.
func clusterKubectl() (string, error) {
	cache := os.Getenv("MCPAUTH_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache", "mcpauth")
	}
	version := envString("KUBE_VERSION", "v1.37.2")
	k := filepath.Join(cache, "cluster", version, "kubectl")
	if _, err := os.Stat(k); err != nil {
		return "", fmt.Errorf("the cluster's kubectl: %w", err)
	}
	return k, nil
}

// envtestAssets finds kube-apiserver, etcd and kubectl for the envtest mode.
func (d *dev) envtestAssets() error {
	var err error
	if d.assets, err = kubeenv.Assets(); err != nil {
		return withHint(err, "run `make envtest` (builds kube-apiserver once, about 5 minutes) and see what it says")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(d.assets, bin)); err != nil {
			return withHint(fmt.Errorf("envtest assets in %s: %w", d.assets, err), "run `make envtest`")
		}
	}
	d.kubectl = filepath.Join(d.assets, "kubectl")
	if _, err := os.Stat(d.kubectl); err != nil {
		if d.kubectl, err = exec.LookPath("kubectl"); err != nil {
			return withHint(errors.New("kubectl not found in the envtest assets nor on PATH"), "run `make envtest`")
		}
	}
	d.note("kube-apiserver and etcd from %s", d.assets)
	return nil
}

func (d *dev) pidfile() string { return filepath.Join(d.o.dir, "pids") }

// envFile holds the URLs as shell variables while the system runs, for
// hack/dev/client.sh.
func (d *dev) envFile() string { return filepath.Join(d.o.dir, "env") }

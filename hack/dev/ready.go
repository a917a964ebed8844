package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

// expiryWait is how long the end-to-end Node client waits for its access token to
// expire: the dev OAuthProvider's access tokens live a minute (the CRD's minimum).
const expiryWait = 65 * time.Second

// printReady tells the person at the terminal what runs where and how to use it, and
// writes the same as shell variables to bin/dev/env for hack/dev/client.sh.
func (d *dev) printReady() {
	kc := d.kubeconfig
	vars := [][2]string{
		{"KUBECONFIG", kc},
		{"MCP_URL", d.mcpURL()},
		{"EXPECT_ISSUER", d.issuer()},
		{"IDP_USER_LOGIN", devUserLogin},
		{"IDP_USER_PASSWORD", devUserPassword},
		{"EXPECT_SUB", devUserSub},
		{"EXPECT_EMAIL", devUserEmail},
		{"EXPIRY_WAIT_MS", fmt.Sprint(expiryWait.Milliseconds())},
		{"TIMEOUT_MS", fmt.Sprint((expiryWait + 60*time.Second).Milliseconds())},
	}
	var env strings.Builder
	env.WriteString("# Written by `make dev` for hack/dev/client.sh; valid while it runs.\n")
	for _, v := range vars {
		fmt.Fprintf(&env, "%s=%s\n", v[0], v[1])
	}
	_ = os.WriteFile(d.envFile(), []byte(env.String()), 0o600)

	clientIDs := d.clientIDs()
	w := d.out
	fmt.Fprintf(w, `
  mcpauth is running. Ctrl-C stops everything.

  issuer:      %s
  metadata:    %s
  MCP server:  %s   (tools: whoami, echo)
  login:       user %s, password %s   (at the dev OpenID provider, %s)
`, d.issuer(), d.metadataURL(), d.mcpURL(), devUserLogin, devUserPassword, d.idpURL())
	for _, c := range clientIDs {
		fmt.Fprintf(w, "  MCPClient:   %s\n", c)
	}
	kubectl := "kubectl"
	if _, err := exec.LookPath("kubectl"); err != nil || d.o.mode == "cluster" {
		kubectl = d.kubectl // the envtest assets' own, or the one built with the cluster
	}
	get := "get oap,mcpc"
	logs := fmt.Sprintf("tail -f %s", d.logPath("authserver"))
	if d.o.mode == "cluster" {
		get = "get oap,mcpc,pods"
		logs = "kubectl logs -l app.kubernetes.io/name=mcpauth-authserver"
	}
	fmt.Fprintf(w, `
  Kubernetes, from a second terminal:
    export KUBECONFIG=%s
    %s %s

  MCP Inspector: run `+"`npx @modelcontextprotocol/inspector`"+`, choose Transport Type
    "Streamable HTTP", URL %s, and Connect. It registers
    itself; log in as %s / %s in the browser and approve. (Or enter the
    client ID above under Authentication.)
  Any MCP client: give it %s; it discovers the rest.

  The end-to-end Node client, from a second terminal (about %d s: it waits for
  its one-minute access token to expire, and refreshes):
    hack/dev/client.sh
  which runs, in test/e2e/node:
    %s \
    node client.mjs

  logs:        %s/   (%s)
`, kc, kubectl, get, d.mcpURL(), devUserLogin, devUserPassword, d.mcpURL(),
		int((expiryWait + 10*time.Second).Seconds()), envLine(vars[1:]), d.rel(d.logDir), logs)
	fmt.Fprintln(w)
}

func envLine(vars [][2]string) string {
	var parts []string
	for _, v := range vars {
		parts = append(parts, v[0]+"="+v[1])
	}
	// Three to a line.
	var lines []string
	for i := 0; i < len(parts); i += 3 {
		lines = append(lines, strings.Join(parts[i:min(i+3, len(parts))], " "))
	}
	return strings.Join(lines, " \\\n    ")
}

// clientIDs describes the manifests' MCPClients with the IDs the operator gave them.
func (d *dev) clientIDs() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []string
	for _, c := range d.manifests.clients {
		var mc oauthv1alpha1.MCPClient
		if err := d.k8s.Get(ctx, client.ObjectKeyFromObject(c), &mc); err != nil {
			continue
		}
		kind := "public"
		if mc.Spec.TokenEndpointAuthMethod != oauthv1alpha1.AuthMethodNone && mc.Spec.TokenEndpointAuthMethod != "" {
			kind = "confidential, secret in Secret " + mc.Status.SecretName
		}
		out = append(out, fmt.Sprintf("%s, client ID %s (%s, loopback redirect URIs)", mc.Name, mc.Status.ClientID, kind))
	}
	return out
}

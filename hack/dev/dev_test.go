//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/internal/testutil/kubeenv"
)

// runAsDev makes the test binary act as the program: the test starts it as a child
// process, so it can send the signal a person's Ctrl-C sends and watch its exit.
const runAsDev = "MCPAUTH_DEV_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsDev) == "1" {
		o, err := parseFlags(os.Args[1:], os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(run(o))
	}
	os.Exit(m.Run())
}

// TestDevReachesReadyAndStopsCleanly runs `make dev`'s program on free ports until it
// is ready, checks what it printed works (the issuer's metadata, the kubeconfig, the
// MCP server's challenge), then interrupts it as Ctrl-C would: it must exit 0 within
// 15 s and leave none of its processes behind.
func TestDevReachesReadyAndStopsCleanly(t *testing.T) {
	requireNodeModules(t)
	assets, err := kubeenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ports := freePorts(t, 3)
	cmd := exec.Command(os.Args[0],
		"--dir", dir,
		fmt.Sprintf("--authserver-port=%d", ports[0]),
		fmt.Sprintf("--mcp-port=%d", ports[1]),
		fmt.Sprintf("--idp-port=%d", ports[2]),
	)
	cmd.Env = append(os.Environ(), runAsDev+"=1", "KUBEBUILDER_ASSETS="+assets)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	var out lockedBuffer
	ready := make(chan struct{})
	go func() {
		s := bufio.NewScanner(stdout)
		seen, closed := false, false
		for s.Scan() {
			out.WriteString(s.Text() + "\n")
			// "[7/7] ready", then what runs where, ending with the logs line.
			seen = seen || strings.HasPrefix(s.Text(), "[7/7] ready")
			if seen && !closed && strings.HasPrefix(strings.TrimSpace(s.Text()), "logs:") {
				close(ready)
				closed = true
			}
		}
		_, _ = io.Copy(&out, stdout)
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default: // a failed test: stop it the hard way, as a second Ctrl-C would
			_ = cmd.Process.Signal(syscall.SIGINT)
			time.Sleep(100 * time.Millisecond)
			_ = cmd.Process.Signal(syscall.SIGINT)
			<-exited
		}
	})
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\n--- stdout:\n%s\n--- stderr:\n%s", fmt.Sprintf(format, args...), out.String(), stderr.String())
	}

	start := time.Now()
	select {
	case <-ready:
		t.Logf("ready after %s", time.Since(start).Round(100*time.Millisecond))
	case <-exited:
		fail("the program exited before it was ready: %v", exitErr)
	case <-time.After(90 * time.Second):
		fail("not ready after 90 s")
	}
	printed := out.String()
	issuer := field(printed, "issuer:")
	kubeconfig := field(printed, "export KUBECONFIG=")
	mcpURL := strings.Fields(field(printed, "MCP server:"))[0]
	if want := fmt.Sprintf("http://127.0.0.1:%d", ports[0]); issuer != want {
		fail("issuer %q, want %q", issuer, want)
	}

	// The authorization server's metadata is served at the printed issuer.
	var meta map[string]any
	getJSON(t, issuer+"/.well-known/oauth-authorization-server", &meta)
	if meta["issuer"] != issuer {
		fail("metadata issuer %v, want %s", meta["issuer"], issuer)
	}

	// kubectl through the printed kubeconfig shows the OAuthProvider Ready.
	kubectl := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		kubectl = "kubectl"
	}
	got, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "oap", "dev",
		"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`).CombinedOutput()
	if err != nil || string(got) != "True" {
		fail("kubectl get oap: %q, %v; want Ready True", got, err)
	}
	table, _ := exec.Command(kubectl, "--kubeconfig", kubeconfig, "get", "oap,mcpc").CombinedOutput()
	t.Logf("kubectl get oap,mcpc:\n%s", table)

	// The MCP server challenges an anonymous client as the MCP specification says.
	resp, err := http.Post(mcpURL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		fail("POST %s: %v", mcpURL, err)
	}
	resp.Body.Close()
	if c := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(c, "resource_metadata=") {
		fail("POST %s: %s, WWW-Authenticate %q; want 401 with resource_metadata", mcpURL, resp.Status, c)
	}

	// Ctrl-C: everything stops, in time, and no process is left.
	kids := childrenOf(cmd.Process.Pid)
	names := map[string]bool{}
	for _, k := range kids {
		names[k.comm] = true
	}
	for _, want := range []string{"kube-apiserver", "etcd", "node"} {
		if !names[want] {
			fail("no %s among the program's children %v", want, kids)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	select {
	case <-exited:
		if exitErr != nil {
			fail("after SIGINT: %v, want exit status 0", exitErr)
		}
		t.Logf("stopped %s after SIGINT", time.Since(stopAt).Round(100*time.Millisecond))
	case <-time.After(15 * time.Second):
		fail("still running 15 s after SIGINT")
	}
	for _, k := range kids {
		if p, ok := readProc(k.pid); ok && p.start == k.start && p.state != 'Z' {
			fail("%s is still running after the program exited", k)
		}
	}
	if !strings.Contains(out.String(), "no process left behind") {
		fail("the program did not report a clean stop")
	}
	if _, err := os.Stat(kubeconfig); !os.IsNotExist(err) {
		fail("the kubeconfig of a stopped control plane is still there: %v", err)
	}
}

// requireNodeModules skips without the npm packages, except in CI where their absence
// is a broken setup.
func requireNodeModules(t *testing.T) {
	t.Helper()
	mod := filepath.Join(kubeenv.RepoRoot(), "test", "e2e", "node", "node_modules", "oidc-provider")
	_, err := os.Stat(mod)
	if _, nerr := exec.LookPath("node"); err == nil && nerr == nil {
		return
	}
	msg := "node or test/e2e/node/node_modules is missing: install Node.js 20.19 or later with npm, then run `make install-deps` (it installs the npm packages)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// field returns what follows prefix on the first line (trimmed) that has it.
func field(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if _, after, ok := strings.Cut(l, prefix); ok {
			return strings.TrimSpace(after)
		}
	}
	return ""
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// childrenOf lists pid's live children.
func childrenOf(pid int) []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		var n int
		if _, err := fmt.Sscan(e.Name(), &n); err != nil {
			continue
		}
		if p, ok := readProc(n); ok && p.ppid == pid && p.state != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// freePorts returns n distinct free loopback ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// lockedBuffer is a strings.Builder safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

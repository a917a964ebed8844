package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

// TestSIGTERMDuringLoadDrainsInFlightRequests runs the real cmd/authserver binary,
// loads it, holds some requests inside it (logins waiting on a slow upstream, token
// and introspection requests whose bodies are still arriving), and sends it SIGTERM,
// as Kubernetes does when it stops a pod. Every request already inside completes
// normally; nothing is answered 5xx (new connections are refused, which a client or a
// Service retries elsewhere); the process exits 0 once drained.
func TestSIGTERMDuringLoadDrainsInFlightRequests(t *testing.T) {
	bin := buildAuthserver(t)
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	tg, proc, exited := startBinary(t, bin, idp)
	ctx := t.Context()

	// Tokens for the requests whose bodies will arrive slowly.
	first := newLedger()
	if !tg.flow(ctx, first) {
		t.Fatal("a login before the load failed")
	}
	access, refresh := first.snapshot()

	l := newLedger()
	loadCtx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() { defer close(loadDone); tg.load(loadCtx, 4, l) }()
	t.Cleanup(func() { stopLoad(); <-loadDone })
	eventually(t, 5*time.Second, "the load logs in", func() bool { return l.logins.Load() >= 5 })

	// Hold requests inside the server: logins whose callback waits on the upstream,
	// and two requests whose bodies stop half way. They go through a target of their
	// own, which counts what it sent.
	held := newTarget(tg.issuer)
	var inflight sync.WaitGroup
	results := make(chan string, 8)
	idp.SetTokenDelay(time.Second)
	for i := range 3 {
		inflight.Go(func() {
			if _, _, err := held.login(ctx); err != nil {
				results <- fmt.Sprintf("held login %d: %v", i, err)
			}
		})
	}
	release := make(chan struct{})
	inflight.Go(func() {
		if msg := held.slowBody(ctx, "/oauth/token", "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": refresh[:1], "client_id": {clientID}}, release); msg != "" {
			results <- "held refresh: " + msg
		}
	})
	inflight.Go(func() {
		if msg := held.slowBody(ctx, "/oauth/introspect", rsID, rsSecret, url.Values{"token": access[:1]}, release); msg != "" {
			results <- "held introspection: " + msg
		}
	})
	eventually(t, 5*time.Second, "the held requests are sent", func() bool {
		return held.started("/oauth/callback") == 3 && held.started("/oauth/token") == 1 && held.started("/oauth/introspect") == 1
	})
	// The callbacks wait a second on the upstream; 200 ms is plenty for the server to
	// have read every held request's headers.
	time.Sleep(200 * time.Millisecond)

	term := time.Now()
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(release)
	inflight.Wait()
	close(results)
	for msg := range results {
		t.Error(msg)
	}

	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the server exited with %v, want 0", err)
		}
		t.Logf("the server exited %s after SIGTERM", time.Since(term).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not exit within 10 s of SIGTERM")
	}
	stopLoad()
	<-loadDone
	if got := checkNo5xxBut503(t, append(tg.log.since(time.Time{}), held.log.since(time.Time{})...)); got > 0 {
		t.Errorf("%d answers were 503", got)
	}
	t.Logf("%d logins, %d flows cut short by the shutdown", l.logins.Load(), l.failures.Load())
}

// slowBody posts form in two halves, the second once release is closed, and returns
// what went wrong ("" when the answer was 200, and for introspection active).
func (tg *target) slowBody(ctx context.Context, path, user, pass string, form url.Values, release <-chan struct{}) string {
	body := form.Encode()
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, body[:len(body)/2])
		<-release
		_, _ = io.WriteString(pw, body[len(body)/2:])
		_ = pw.Close()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tg.issuer+path, pr)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := tg.http.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || (strings.Contains(path, "introspect") && !bytes.Contains(b, []byte(`"active":true`))) {
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	return ""
}

// buildAuthserver builds cmd/authserver into the test's temporary directory.
func buildAuthserver(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "authserver")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "github.com/mcpauth/mcpauth/cmd/authserver")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/authserver: %v\n%s", err, out)
	}
	return bin
}

// startBinary runs the server binary on a free loopback port with the memory store,
// the fault clients and idp as its upstream, and waits until it is ready. exited
// receives the process's end.
func startBinary(t *testing.T, bin string, idp *upstreamtest.Server) (*target, *os.Process, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	issuer := "http://" + addr
	cfg := fmt.Sprintf(`issuer: %s
listenAddress: %s
scopesSupported: [%s]
defaultScopes: [%s]
upstream:
  type: oidc
  clientID: %s
  issuerURL: %s
clients:
  - clientID: %s
    redirectURIs: [%q]
    tokenEndpointAuthMethod: none
    trusted: true
  - clientID: %s
    secretHash: %s
    redirectURIs: [%q]
    tokenEndpointAuthMethod: client_secret_basic
store:
  type: memory
`, issuer, addr, scope, scope, idp.ClientID, idp.Issuer, clientID, redirectURI, rsID, config.HashClientSecret(rsSecret), redirectURI)
	path := filepath.Join(t.TempDir(), "authserver.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd := exec.Command(bin, "--config", path)
	cmd.Env = append(os.Environ(), "MCPAUTH_UPSTREAM_CLIENT_SECRET="+idp.ClientSecret)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	tg := newTarget(issuer)
	deadline := time.Now().Add(10 * time.Second)
	for tg.get(t.Context(), "/readyz") != http.StatusOK {
		select {
		case err := <-exited:
			t.Fatalf("the server exited at start: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server was not ready within 10 s\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return tg, cmd.Process, exited
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

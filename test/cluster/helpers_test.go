//go:build linux

package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// moduleRoot is the repository's top directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s", dir)
	}
	return dir
}

// readInputs reads what this test's outcome depends on but does not link (the scripts,
// the manifests, the sources of the images it builds, the Node scripts), so that
// `go test`'s cache runs the test again when any of them changes.
func readInputs(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if name == "bin" || name == "node_modules" || name == ".git" || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(name) {
		case ".go", ".sh", ".mjs", ".yaml", ".json", ".mod", ".sum":
			_, err := os.ReadFile(p)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// logWriter copies a component's output to the test log, line by line.
type logWriter struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
	done   bool
}

func newLogWriter(t testing.TB, prefix string) *logWriter {
	w := &logWriter{t: t, prefix: prefix}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return w
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.Logf("%s| %s", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// process is a host process the test started and stops.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs a host process in its own process group, its output in the test log; it
// is stopped (SIGTERM, then SIGKILL) at the end of the test or by stop.
func start(t *testing.T, name, dir string, env []string, stdout io.Writer, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	lw := newLogWriter(t, name)
	cmd.Stderr = lw
	cmd.Stdout = lw
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// firstLine starts a process and returns the first line it prints on stdout (the
// rest goes to the test log).
func firstLine(ctx context.Context, t *testing.T, name, dir string, env []string, bin string, args ...string) (*process, string) {
	t.Helper()
	pr, pw := io.Pipe()
	p := start(t, name, dir, env, pw, bin, args...)
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(pr)
		l, _ := r.ReadString('\n')
		lines <- l
		_, _ = io.Copy(newLogWriter(t, name), r)
	}()
	go func() { <-p.done; _ = pw.Close() }()
	select {
	case l := <-lines:
		if strings.TrimSpace(l) == "" {
			t.Fatalf("%s exited before it printed its first line", name)
		}
		return p, strings.TrimSpace(l)
	case <-ctx.Done():
		t.Fatalf("%s: no first line: %v", name, ctx.Err())
	}
	return nil, ""
}

// run runs a command to the end with its output in the test log, and returns its
// standard output.
func run(ctx context.Context, t *testing.T, name, dir string, env []string, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = newLogWriter(t, name)
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.String(), err
}

// proxy forwards TCP connections from a loopback port to target (a Service's
// ClusterIP, which kube-proxy balances over the pods): the issuer and the MCP URL stay
// on loopback, as the server's validation wants for plain http.
type proxy struct {
	l      net.Listener
	mu     sync.Mutex
	target string
}

func newProxy(t *testing.T) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	t.Cleanup(func() { _ = l.Close() })
	go p.serve()
	return p
}

func (p *proxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *proxy) setTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		go func() {
			defer c.Close()
			if target == "" {
				return
			}
			u, err := dialWithRetry(context.Background(), "tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(u, c); _ = u.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, u); _ = c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

// newHTTPProxy is a loopback reverse proxy to target that opens a new connection to
// it for every request, so kube-proxy, which balances connections, spreads the requests
// of one client over the pods behind the Service, as many clients would.
func newHTTPProxy(t *testing.T) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l}
	transport := &http.Transport{DisableKeepAlives: true, DialContext: dialWithRetry}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		target := p.target
		p.mu.Unlock()
		if target == "" {
			http.Error(w, "no target yet", http.StatusBadGateway)
			return
		}
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(&url.URL{Scheme: "http", Host: target})
				pr.Out.Host = pr.In.Host // the issuer's host, as the client sent it
			},
			Transport: transport,
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

// dialWithRetry dials like net.Dialer, retrying a refused or unreachable connection for
// up to 10 s. While a rollout replaces the pods, kube-proxy rewrites its rules a moment
// after the endpoints change, so a connection can briefly meet a pod that is gone; a
// failed dial sent nothing, so retrying it is what any client would do, and a Service
// that stays unreachable still fails the test.
func dialWithRetry(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePort returns a port free on host (for a process that must be told its port).
func freePort(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// poll calls f until it returns nil, ctx ends, or timeout passes.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = f(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

var errNotYet = errors.New("not yet")

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a process gets to exit after SIGTERM before it is killed.
const stopGrace = 5 * time.Second

// logWriter sends what is written to it to the test log, one t.Log line per line of
// output, prefixed with the component's name, and hands each line to the watchers. It
// goes quiet when the test's cleanup stops it, so a late write from a server goroutine
// never reaches a finished test.
type logWriter struct {
	t      testing.TB
	prefix string

	mu       sync.Mutex
	buf      []byte
	stopped  bool
	lines    []string
	changed  chan struct{} // closed and replaced whenever a line arrives
	watchers []func(string)
}

// newLogWriter returns a writer logging to t. Register it before the component it
// serves, so its cleanup (stop) runs after the component's.
func newLogWriter(t testing.TB, prefix string) *logWriter {
	w := &logWriter{t: t, prefix: prefix, changed: make(chan struct{})}
	t.Cleanup(w.stop)
	return w
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// line records one line; w.mu is held.
func (w *logWriter) line(s string) {
	if w.stopped {
		return
	}
	w.t.Logf("%s: %s", w.prefix, s)
	w.lines = append(w.lines, s)
	for _, f := range w.watchers {
		f(s)
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *logWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
	w.stopped = true
}

// watch calls f with every line from now on.
func (w *logWriter) watch(f func(string)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.watchers = append(w.watchers, f)
}

// await waits until a line satisfies match and returns it. It gives up when ctx ends
// or exited is closed (the process is gone).
func (w *logWriter) await(ctx context.Context, exited <-chan struct{}, match func(string) bool) (string, error) {
	seen := 0
	for {
		w.mu.Lock()
		for ; seen < len(w.lines); seen++ {
			if match(w.lines[seen]) {
				l := w.lines[seen]
				w.mu.Unlock()
				return l, nil
			}
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-exited:
			return "", errors.New("the process exited")
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// process is a child process whose stdout and stderr go to the test log. It is
// stopped (SIGTERM, then SIGKILL) at the test's cleanup, and killed by the kernel if
// the test binary dies first.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout *logWriter
	stderr *logWriter
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, once done is closed
}

// startProcess starts bin with args, the current environment plus env, in dir.
func startProcess(t *testing.T, name, dir string, env []string, bin string, args ...string) *process {
	t.Helper()
	p := &process{
		name:   name,
		stdout: newLogWriter(t, name),
		stderr: newLogWriter(t, name),
		done:   make(chan struct{}),
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.WaitDelay = time.Second // a grandchild holding the pipes cannot block Wait
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p.cmd = cmd
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

// stop ends the process (only this one, by its PID) and waits for it.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports why the process ended, for failure messages.
func (p *process) exited() string {
	select {
	case <-p.done:
		return fmt.Sprintf("%s exited: %v", p.name, p.err)
	default:
		return p.name + " is running"
	}
}

// cleanEnv is the test's environment without the variables our components read, so a
// developer's shell cannot change what the test runs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MCPAUTH_") || strings.HasPrefix(k, "OAUTH_") || strings.HasPrefix(k, "SESSION_") ||
			strings.HasPrefix(k, "IDP_") || strings.HasPrefix(k, "NODE_") || strings.HasPrefix(k, "EXPECT_") ||
			k == "CLIENT_METADATA" || k == "SSL_CERT_FILE" || k == "SSL_CERT_DIR" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runToEnd runs bin to completion and returns its stdout; stderr goes to the test log.
func runToEnd(ctx context.Context, t *testing.T, name, dir string, env []string, bin string, args ...string) ([]byte, error) {
	var stdout bytes.Buffer
	stderr := newLogWriter(t, name)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout = io.MultiWriter(&stdout, newLogWriter(t, name+" stdout"))
	cmd.Stderr = stderr
	cmd.WaitDelay = time.Second
	setParentDeathSignal(cmd)
	err := cmd.Run()
	return stdout.Bytes(), err
}

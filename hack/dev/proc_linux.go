package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process as /proc shows it.
type proc struct {
	pid, ppid, pgid int
	comm            string
	state           byte
	start           uint64 // start time in clock ticks since boot: with pid, an identity
}

func (p proc) String() string { return fmt.Sprintf("%s (pid %d)", p.comm, p.pid) }

// readProc parses /proc/PID/stat.
func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return proc{}, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return proc{}, false
	}
	f := strings.Fields(s[closing+1:])
	// After the command: state ppid pgrp session tty tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime.
	if len(f) < 20 {
		return proc{}, false
	}
	p := proc{pid: pid, comm: s[open+1 : closing], state: f[0][0]}
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgid, _ = strconv.Atoi(f[2])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, true
}

// children lists this process's live (not zombie) children.
func children() []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok && p.ppid == self && p.state != 'Z' {
			out = append(out, p)
		}
	}
	return out
}

// killChildren sends sig to every live child (to its whole group when it leads one),
// waits up to 3 s for them to go, removes the envtest directories they used, and
// names the ones it signalled.
func killChildren(sig syscall.Signal) []string {
	kids := children()
	var names, dirs []string
	for _, p := range kids {
		dirs = append(dirs, envtestDirs(p.pid)...)
		signalProc(p, sig)
		names = append(names, p.String())
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(children()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
	return names
}

func signalProc(p proc, sig syscall.Signal) {
	if p.pgid == p.pid {
		_ = syscall.Kill(-p.pid, sig)
	} else {
		_ = syscall.Kill(p.pid, sig)
	}
}

// setParentDeathSignal has the kernel kill a child if this process dies without
// cleaning up (kill -9). The kernel ties the signal to the OS thread that started the
// child; the Go runtime only ends a thread when a goroutine locked to it exits, which
// nothing here does. Its own process group keeps a terminal's Ctrl-C from reaching it
// before this program stops it in order.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// writePidfile records the live children, so a run after a kill -9 can stop what this
// one left (envtest's kube-apiserver and etcd do not die with their parent).
func writePidfile(path string) error {
	var b strings.Builder
	for _, p := range children() {
		fmt.Fprintf(&b, "%d %d %s\n", p.pid, p.start, p.comm)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// stopLeftovers kills the processes of a pidfile that are still the same processes
// (same pid and start time), removes the envtest directories they used, and names
// them. They are orphans of a killed run, so there is nothing to stop gracefully (and
// a kube-apiserver whose etcd is gone ignores SIGTERM for a long while).
func stopLeftovers(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		start, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		p, ok := readProc(pid)
		if !ok || p.start != start || p.state == 'Z' {
			continue
		}
		dirs := envtestDirs(pid)
		signalProc(p, syscall.SIGKILL)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if q, ok := readProc(pid); !ok || q.start != start || q.state == 'Z' {
				break
			}
		}
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
		names = append(names, p.String())
	}
	_ = os.Remove(path)
	return names
}

// envtestDirs are the temporary directories envtest made for a process (its
// --data-dir and --cert-dir).
func envtestDirs(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return nil
	}
	var dirs []string
	for _, arg := range strings.Split(string(b), "\x00") {
		for _, flag := range []string{"--data-dir=", "--cert-dir="} {
			if d, ok := strings.CutPrefix(arg, flag); ok && filepath.Dir(d) == filepath.Clean(os.TempDir()) &&
				strings.HasPrefix(filepath.Base(d), "k8s_test_framework_") {
				dirs = append(dirs, d)
			}
		}
	}
	return dirs
}

// lockDir takes an exclusive lock on dir for this run; a second `make dev` on the same
// directory would fight over ports and files.
func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		_ = f.Close()
		holder := strings.TrimSpace(string(b))
		if holder == "" {
			holder = "another process"
		} else {
			holder = "pid " + holder
		}
		return nil, fmt.Errorf("another `make dev` (%s) is running with %s", holder, dir)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { _ = f.Close() }, nil
}

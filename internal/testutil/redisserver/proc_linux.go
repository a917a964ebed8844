package redisserver

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill the Redis process if the test binary dies
// without running its cleanups (a panic, a -timeout), so no server outlives its test.
// The kernel ties the signal to the OS thread that started the process; the Go runtime
// only ends a thread when a goroutine locked to it exits, which nothing here does.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

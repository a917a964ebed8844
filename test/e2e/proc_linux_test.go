package e2e

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill the child if the test binary dies without
// running its cleanups (a panic, a -timeout), so no server outlives the test.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

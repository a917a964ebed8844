//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

// Elsewhere than Linux there is no /proc to read: the ordered shutdown is the only
// stop, and nothing is known about leftovers.

func killChildren(syscall.Signal) []string { return nil }

func setParentDeathSignal(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

func writePidfile(string) error { return nil }

func stopLeftovers(string) []string { return nil }

func lockDir(string) (func(), error) { return func() {}, nil }

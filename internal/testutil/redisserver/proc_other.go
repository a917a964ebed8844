//go:build !linux

package redisserver

import "os/exec"

// setParentDeathSignal is Linux-only; elsewhere the test's cleanup is the only stop.
func setParentDeathSignal(*exec.Cmd) {}

// Package integration holds tests that join the operator and the authorization server:
// the objects the operator renders on a real apiserver (envtest) are what the server
// runs from, in process, with internal/devkubelet acting as the kubelet.
package integration

// Command mcpauth administers an mcpauth authorization server: `mcpauth admin grants`
// lists grants, `mcpauth admin revoke` revokes every grant of a user, of a client or
// of the whole provider, and `mcpauth admin clients` lists the dynamic registrations;
// `mcpauth admin approvals`, `approve` and `deny` handle the clients of approval mode.
// `mcpauth --help` says how; internal/admincli does the work.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpauth/mcpauth/internal/admincli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := admincli.Run(ctx, os.Args[1:], admincli.Env{Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}

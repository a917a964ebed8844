// Command authserver runs the mcpauth OAuth 2.1 authorization server from its
// configuration file (docs/configuration.md), the file the operator renders from an
// OAuthProvider. Standalone, with the memory store:
//
//	cat > authserver.yaml <<'YAML'
//	issuer: http://127.0.0.1:8080
//	upstream:
//	  type: github
//	  clientID: Iv1.0123456789abcdef
//	YAML
//	MCPAUTH_UPSTREAM_CLIENT_SECRET=... authserver --config authserver.yaml
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/mcpauth/mcpauth/authserver/app"
	"github.com/mcpauth/mcpauth/authserver/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "authserver:", err)
		os.Exit(1)
	}
}

const usage = `Usage: authserver --config FILE [--check] [--log-level LEVEL]

Runs the mcpauth OAuth 2.1 authorization server described by FILE (YAML; every
field is documented in docs/configuration.md). Secrets never sit in the file:
  MCPAUTH_UPSTREAM_CLIENT_SECRET  or upstream.clientSecretFile
  MCPAUTH_ENCRYPTION_KEY          or secrets.encryptionKeyFile (base64, >= 32 bytes;
                                  required with Redis, random with memory)
  MCPAUTH_REDIS_PASSWORD          or store.redis.passwordFile
These override the file (the origin's names; TTLs in seconds):
  OAUTH_AUTH_CODE_TTL=300 OAUTH_ACCESS_TOKEN_TTL=900 OAUTH_REFRESH_TOKEN_TTL=86400
  OAUTH_CLIENT_REGISTRATION_TTL=31536000 OAUTH_EXTERNAL_TOKEN_TTL=86400
  SESSION_PROVIDER=memory|redis SESSION_REDIS_URL=redis://host:6379/0

Flags:
`

// gcPercent is the collector's target the server sets itself, if any: 200 with the
// Redis store unless GOGC says otherwise. With Redis the process holds no tokens: its
// live heap is a few MiB whatever the traffic, so collecting at three times that
// instead of twice costs some 10 MiB of memory and saves 3-7% of the server's CPU
// per request, 2-9% more requests per second on a busy machine (docs/performance.md). The memory store keeps every token on the heap, which would
// grow by half again, so it keeps Go's default.
func gcPercent(store config.StoreType, gogc string) (int, bool) {
	if store != config.StoreRedis || gogc != "" {
		return 0, false
	}
	return 200, true
}

// run serves until ctx is cancelled. ready, when not nil, receives the address the
// server listens on (tests configure port 0).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("authserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	path := fs.String("config", "", "the configuration file (required)")
	check := fs.Bool("check", false, "validate the configuration and secrets, then exit")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *path == "" {
		fs.Usage()
		return errors.New("--config is required")
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	cfg, err := config.Load(*path, getenv)
	if err != nil {
		return err
	}
	if *check {
		if _, err := cfg.ResolveSecrets(getenv, os.ReadFile); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%s: valid\n", *path)
		return nil
	}
	if pct, ok := gcPercent(cfg.Store.Type, getenv("GOGC")); ok {
		debug.SetGCPercent(pct)
		log.Debug("garbage collection target raised for the Redis store; GOGC chooses another", "gogc", pct)
	}
	a, err := app.New(ctx, cfg, app.Options{Getenv: getenv, Logger: log})
	if err != nil {
		return err
	}
	addr, err := a.Listen("")
	if err != nil {
		return err
	}
	if ready != nil {
		ready <- addr
	}
	return a.Run(ctx)
}

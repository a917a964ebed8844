// Command profserver is cmd/authserver with net/http/pprof on MCPAUTH_PPROF_ADDR, for
// profiling the server under the load generator (loadgen -authserver bin/profserver).
// It is a development tool: `make bench` runs the real binary.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpauth/mcpauth/authserver/app"
	"github.com/mcpauth/mcpauth/authserver/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	path := flag.String("config", "", "the configuration file")
	flag.String("log-level", "warn", "ignored: always warn")
	flag.Parse()
	if addr := os.Getenv("MCPAUTH_PPROF_ADDR"); addr != "" {
		go func() { fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, nil)) }()
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, *path, log); err != nil {
		fmt.Fprintln(os.Stderr, "profserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, path string, log *slog.Logger) error {
	cfg, err := config.Load(path, os.Getenv)
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	if _, err := a.Listen(""); err != nil {
		return err
	}
	return a.Run(ctx)
}

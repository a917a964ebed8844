// Command mcpserver is an example MCP server protected by an mcpauth authorization
// server. Its whoami tool calls the upstream identity provider's user-info endpoint
// with the signed-in user's upstream token and returns who the user is; admin_whoami
// does the same and needs the tools:admin scope, so calling it without makes a client
// step up (--tool-scope, --scope-implies and --filter-tools-list; docs/scopes.md).
//
//	mcpserver --resource-url http://localhost:8080/mcp --issuer http://localhost:9000 \
//	    --introspection-client-id example-mcp --introspection-client-secret-file secret.txt \
//	    --upstream-userinfo-url https://api.github.com/user
//
// The introspection client secret comes from --introspection-client-secret-file, else
// from the MCP_INTROSPECTION_CLIENT_SECRET environment variable (never a flag: flags
// show in process listings).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mcpauth/mcpauth/examples/mcpserver/server"
)

// secretEnv is the environment variable read when no secret file is given.
const secretEnv = "MCP_INTROSPECTION_CLIENT_SECRET"

// shutdownGrace is how long in-flight requests get once a signal arrives. Streams
// (SSE) never go idle, so they are cut after it.
const shutdownGrace = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], os.Getenv, logger); err != nil {
		logger.Error("mcpserver failed", "err", err)
		os.Exit(1)
	}
}

// options are the parsed command line.
type options struct {
	listen string
	cfg    server.Config
}

// parseFlags reads the command line, and the secret from its file or environment.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("mcpserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var secretFile, scopes string
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&o.cfg.ResourceURL, "resource-url", "", "this server's canonical URL as clients reach it, MCP path included (required)")
	fs.StringVar(&o.cfg.Issuer, "issuer", "", "the mcpauth authorization server's issuer URL (required)")
	fs.StringVar(&o.cfg.IntrospectionEndpoint, "introspection-endpoint", "", "introspection endpoint (default: discovered from the issuer)")
	fs.StringVar(&o.cfg.ClientID, "introspection-client-id", "", "client id for introspection and the revocation feed (required)")
	fs.StringVar(&secretFile, "introspection-client-secret-file", "", "file holding the introspection client secret (default: $"+secretEnv+")")
	fs.StringVar(&o.cfg.UpstreamUserinfoURL, "upstream-userinfo-url", "", "the upstream provider's user-info endpoint (required)")
	fs.StringVar(&scopes, "scopes", server.DefaultScope, "comma-separated scopes every request needs")
	fs.Func("tool-scope", "tool=scope1,scope2: the scopes a tool needs beyond --scopes (repeatable; default admin_whoami=tools:admin)",
		scopeMapFlag(&o.cfg.ToolScopes))
	fs.Func("scope-implies", "broad=narrow1,narrow2: a broader scope implies narrower ones (repeatable; default tools:admin=tools:write and tools:write=tools:read)",
		scopeMapFlag(&o.cfg.ScopeImplies))
	fs.BoolVar(&o.cfg.FilterToolsList, "filter-tools-list", false, "list only the tools the caller's token can call")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, f := range []struct{ name, val string }{
		{"--resource-url", o.cfg.ResourceURL}, {"--issuer", o.cfg.Issuer},
		{"--introspection-client-id", o.cfg.ClientID}, {"--upstream-userinfo-url", o.cfg.UpstreamUserinfoURL},
	} {
		if f.val == "" {
			return nil, fmt.Errorf("%s is required", f.name)
		}
	}
	o.cfg.ClientSecret = getenv(secretEnv)
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("read the introspection client secret: %w", err)
		}
		o.cfg.ClientSecret = strings.TrimSpace(string(b))
	}
	if o.cfg.ClientSecret == "" {
		return nil, fmt.Errorf("no introspection client secret: use --introspection-client-secret-file or $%s", secretEnv)
	}
	for s := range strings.SplitSeq(scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.cfg.Scopes = append(o.cfg.Scopes, s)
		}
	}
	return &o, nil
}

// scopeMapFlag parses name=scope1,scope2 into *m, one entry per use of the flag.
func scopeMapFlag(m *map[string][]string) func(string) error {
	return func(v string) error {
		name, list, ok := strings.Cut(v, "=")
		if name = strings.TrimSpace(name); !ok || name == "" {
			return fmt.Errorf("%q is not name=scope1,scope2", v)
		}
		if *m == nil {
			*m = map[string][]string{}
		}
		var scopes []string
		for s := range strings.SplitSeq(list, ",") {
			if s = strings.TrimSpace(s); s != "" {
				scopes = append(scopes, s)
			}
		}
		if len(scopes) == 0 {
			return fmt.Errorf("%q names no scope", v)
		}
		(*m)[name] = append((*m)[name], scopes...)
		return nil
	}
}

// run serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, logger *slog.Logger) error {
	o, err := parseFlags(args, getenv, os.Stderr)
	if err != nil {
		return err
	}
	o.cfg.Logger = logger
	h, err := server.New(o.cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("serving MCP", "addr", ln.Addr().String(), "resource", o.cfg.ResourceURL, "issuer", o.cfg.Issuer)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close() // open streams outlived the grace period
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

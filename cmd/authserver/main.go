// Command authserver runs the mcpauth authorization server standalone, configured by
// flags: enough for local development with the memory store, or with Redis. The
// operator's deployments run it from a configuration file instead.
//
//	authserver -issuer http://127.0.0.1:8080 \
//	  -upstream-type oidc -upstream-issuer https://accounts.example.com \
//	  -upstream-client-id my-client   # secret in MCPAUTH_UPSTREAM_CLIENT_SECRET
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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

	"github.com/mcpauth/mcpauth/authserver"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/memory"
	redisstore "github.com/mcpauth/mcpauth/authserver/store/redis"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// Environment variables holding secrets, so they stay out of the process's arguments.
const (
	envUpstreamSecret = "MCPAUTH_UPSTREAM_CLIENT_SECRET"
	envEncryptionKey  = "MCPAUTH_ENCRYPTION_KEY"
)

// shutdownTimeout is how long in-flight requests get after SIGTERM; Kubernetes waits
// 30 s by default before it kills the pod.
const shutdownTimeout = 20 * time.Second

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

// flags are the command line.
type flags struct {
	listen, issuer, displayName, docs             string
	scopes, defaultScopes                         string
	upstreamType, upstreamIssuer, upstreamID      string
	upstreamAuthURL, upstreamTokenURL             string
	upstreamUserInfoURL, upstreamScopes           string
	upstreamSecretFile, keyFile                   string
	redisAddr, tenant                             string
	dynamicRegistration, allowPlain, insecureHTTP bool
	logLevel                                      string
}

func parseFlags(args []string, out io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("authserver", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&f.listen, "listen", ":8080", "address to listen on")
	fs.StringVar(&f.issuer, "issuer", "http://127.0.0.1:8080", "public base URL (https, or http on loopback)")
	fs.StringVar(&f.displayName, "display-name", "mcpauth", "name shown on the consent page")
	fs.StringVar(&f.docs, "service-documentation", "", "documentation URL published in the metadata")
	fs.StringVar(&f.scopes, "scopes", "mcp", "comma-separated scopes clients may request")
	fs.StringVar(&f.defaultScopes, "default-scopes", "mcp", "comma-separated scopes granted when none are requested")
	fs.StringVar(&f.upstreamType, "upstream-type", "oidc", "upstream provider: "+joinTypes())
	fs.StringVar(&f.upstreamIssuer, "upstream-issuer", "", "OIDC issuer URL (oidc)")
	fs.StringVar(&f.upstreamID, "upstream-client-id", "", "our client ID at the upstream")
	fs.StringVar(&f.upstreamSecretFile, "upstream-client-secret-file", "", "file holding our upstream client secret (or set "+envUpstreamSecret+")")
	fs.StringVar(&f.upstreamAuthURL, "upstream-authorization-url", "", "authorization endpoint (oauth2)")
	fs.StringVar(&f.upstreamTokenURL, "upstream-token-url", "", "token endpoint (oauth2)")
	fs.StringVar(&f.upstreamUserInfoURL, "upstream-userinfo-url", "", "user info endpoint (oauth2)")
	fs.StringVar(&f.upstreamScopes, "upstream-scopes", "", "comma-separated scopes requested upstream (default: the provider's)")
	fs.StringVar(&f.keyFile, "encryption-key-file", "", "file holding >= 32 random bytes, base64 (or set "+envEncryptionKey+"); required with Redis")
	fs.StringVar(&f.redisAddr, "redis-addr", "", "Redis host:port; empty keeps state in memory (one replica)")
	fs.StringVar(&f.tenant, "tenant", "mcpauth", "key prefix isolating this server's state in a shared store")
	fs.BoolVar(&f.dynamicRegistration, "dynamic-registration", true, "serve RFC 7591 client registration")
	fs.BoolVar(&f.allowPlain, "allow-pkce-plain", false, "accept PKCE plain (discouraged)")
	fs.BoolVar(&f.insecureHTTP, "insecure-http-issuer", false, "accept a plain-http issuer on a non-loopback host (development only)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return f, nil
}

func joinTypes() string {
	var s []string
	for _, t := range upstream.Types() {
		s = append(s, string(t))
	}
	return strings.Join(s, ", ")
}

// run serves until ctx is cancelled, then shuts down gracefully. ready, when not nil,
// receives the listening address (tests listen on port 0).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		return err
	}
	srv, st, err := build(ctx, f, getenv, log)
	if err != nil {
		return err
	}
	defer st.Close()
	return serve(ctx, f.listen, srv.Handler(), log, ready)
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// build turns the flags into a Server and the store it owns.
func build(ctx context.Context, f *flags, getenv func(string) string, log *slog.Logger) (*authserver.Server, store.Store, error) {
	key, err := encryptionKey(f, getenv, log)
	if err != nil {
		return nil, nil, err
	}
	secret, err := secretValue(f.upstreamSecretFile, getenv(envUpstreamSecret), "-upstream-client-secret-file", envUpstreamSecret)
	if err != nil {
		return nil, nil, err
	}
	prov, err := upstream.New(ctx, upstream.Config{
		Type: upstream.Type(f.upstreamType), ClientID: f.upstreamID, ClientSecret: secret,
		IssuerURL: f.upstreamIssuer, AuthorizationURL: f.upstreamAuthURL, TokenURL: f.upstreamTokenURL,
		UserInfoURL: f.upstreamUserInfoURL, Scopes: splitList(f.upstreamScopes),
		RedirectURL: strings.TrimSuffix(f.issuer, "/") + authserver.DefaultCallbackPath,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("upstream: %w", err)
	}
	st, err := newStore(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	srv, err := authserver.New(authserver.Options{
		Issuer: f.issuer, AllowInsecureIssuer: f.insecureHTTP, DisplayName: f.displayName,
		ServiceDocumentation: f.docs, ScopesSupported: splitList(f.scopes), DefaultScopes: splitList(f.defaultScopes),
		AllowPKCEPlain: f.allowPlain, DynamicRegistration: f.dynamicRegistration,
		Store: st, Upstream: prov, MasterKey: key, Logger: log,
	})
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return srv, st, nil
}

func newStore(ctx context.Context, f *flags) (store.Store, error) {
	if f.redisAddr == "" {
		return memory.New(memory.Options{Prefix: f.tenant}), nil
	}
	st, err := redisstore.New(ctx, redisstore.Options{Addrs: []string{f.redisAddr}, Prefix: f.tenant})
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return st, nil
}

// encryptionKey reads the master key. With the memory store a random one is fine (no
// state outlives the process); with Redis every replica and restart needs the same.
func encryptionKey(f *flags, getenv func(string) string, log *slog.Logger) ([]byte, error) {
	v, err := secretValue(f.keyFile, getenv(envEncryptionKey), "-encryption-key-file", envEncryptionKey)
	if err != nil && !(f.redisAddr == "" && f.keyFile == "") {
		return nil, err
	}
	if v == "" {
		log.Warn("no encryption key configured: using a random one; tokens will not survive a restart")
		k := make([]byte, authserver.MinMasterKeyLen)
		_, _ = rand.Read(k)
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(v); err == nil {
			if len(k) < authserver.MinMasterKeyLen {
				return nil, fmt.Errorf("encryption key: %d bytes, need at least %d", len(k), authserver.MinMasterKeyLen)
			}
			return k, nil
		}
	}
	return nil, errors.New("encryption key: not base64")
}

// secretValue reads a secret from a file or the environment: exactly one of them.
func secretValue(file, env, flagName, envName string) (string, error) {
	switch {
	case file != "" && env != "":
		return "", fmt.Errorf("set %s or %s, not both", flagName, envName)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flagName, err)
		}
		return strings.TrimSpace(string(b)), nil
	case env != "":
		return env, nil
	}
	return "", fmt.Errorf("%s or %s is required", flagName, envName)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// serve runs the HTTP server until ctx ends, then stops accepting connections and
// waits for in-flight requests (http.Server.Shutdown).
func serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger, ready chan<- string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

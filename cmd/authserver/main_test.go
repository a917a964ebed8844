package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"github.com/mcpauth/mcpauth/authserver/config"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

func TestHelpDocumentsTheFileAndTheEnvironment(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"-help"}, func(string) string { return "" }, &out, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -help: %v", err)
	}
	for _, want := range []string{"-config", "docs/configuration.md", "MCPAUTH_UPSTREAM_CLIENT_SECRET",
		"OAUTH_ACCESS_TOKEN_TTL=900", "SESSION_PROVIDER", "SESSION_REDIS_URL"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "authserver.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunRefusesBadConfigurationNamingTheField(t *testing.T) {
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	good := "issuer: http://127.0.0.1:8080\nupstream: {type: oidc, clientID: c, issuerURL: " + idp.Issuer + "}\n"
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no --config", nil, nil, "--config is required"},
		{"a missing file", []string{"--config", "/nonexistent.yaml"}, nil, "/nonexistent.yaml"},
		{"no upstream client secret", []string{"--config", writeConfig(t, good)}, nil, "MCPAUTH_UPSTREAM_CLIENT_SECRET"},
		{"a misspelt field", []string{"--config", writeConfig(t, good+"listenAdress: :1\n")},
			map[string]string{"MCPAUTH_UPSTREAM_CLIENT_SECRET": "s"}, "listenAdress"},
		{"a public plain-http issuer", []string{"--config", writeConfig(t, strings.Replace(good, "127.0.0.1:8080", "auth.example.com", 1))},
			map[string]string{"MCPAUTH_UPSTREAM_CLIENT_SECRET": "s"}, "issuer"},
		{"an access token TTL override out of bounds", []string{"--config", writeConfig(t, good)},
			map[string]string{"MCPAUTH_UPSTREAM_CLIENT_SECRET": "s", "OAUTH_ACCESS_TOKEN_TTL": "2"}, "OAUTH_ACCESS_TOKEN_TTL"},
		{"the redis store without an encryption key", []string{"--config", writeConfig(t, good+"tokens: {accessTokenFormat: opaque}\n")},
			map[string]string{"MCPAUTH_UPSTREAM_CLIENT_SECRET": "s", "SESSION_PROVIDER": "redis", "SESSION_REDIS_URL": "redis://127.0.0.1:1/0"}, "MCPAUTH_ENCRYPTION_KEY"},
		{"the redis store with JWT access tokens and no signing keys file", []string{"--config", writeConfig(t, good)},
			map[string]string{"MCPAUTH_UPSTREAM_CLIENT_SECRET": "s", "SESSION_PROVIDER": "redis", "SESSION_REDIS_URL": "redis://127.0.0.1:1/0"}, "secrets.signingKeysFile"},
		{"a stray argument", []string{"serve"}, nil, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			// A configuration that is wrongly accepted would serve forever.
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err := run(ctx, tt.args, getenv, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestCheckValidatesWithoutServing(t *testing.T) {
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	p := writeConfig(t, "issuer: http://127.0.0.1:8080\nupstream: {type: oidc, clientID: c, issuerURL: "+idp.Issuer+"}\n")
	var out bytes.Buffer
	err := run(t.Context(), []string{"--config", p, "--check"}, func(k string) string {
		return map[string]string{"MCPAUTH_UPSTREAM_CLIENT_SECRET": "s"}[k]
	}, &out, nil)
	if err != nil || !strings.Contains(out.String(), "valid") {
		t.Fatalf("--check: %v, %q", err, out.String())
	}
}

func TestServesMetadataAndShutsDownWhenCancelled(t *testing.T) {
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	p := writeConfig(t, "issuer: http://127.0.0.1:8080\nlistenAddress: 127.0.0.1:0\nupstream: {type: oidc, clientID: c, issuerURL: "+idp.Issuer+"}\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--config", p}, func(k string) string {
			return map[string]string{"MCPAUTH_UPSTREAM_CLIENT_SECRET": "s"}[k]
		}, io.Discard, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run ended early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	resp, err := http.Get("http://" + addr + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if md["issuer"] != "http://127.0.0.1:8080" {
		t.Errorf("issuer %v", md["issuer"])
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not shut down")
	}
}

func TestGCPercentIsRaisedOnlyForRedisAndOnlyWithoutGOGC(t *testing.T) {
	for _, c := range []struct {
		store config.StoreType
		gogc  string
		want  int
		ok    bool
	}{
		{config.StoreRedis, "", 200, true},
		{config.StoreRedis, "100", 0, false},
		{config.StoreRedis, "off", 0, false},
		{config.StoreMemory, "", 0, false},
	} {
		if got, ok := gcPercent(c.store, c.gogc); got != c.want || ok != c.ok {
			t.Errorf("gcPercent(%s, %q) = %d, %v; want %d, %v", c.store, c.gogc, got, ok, c.want, c.ok)
		}
	}
}

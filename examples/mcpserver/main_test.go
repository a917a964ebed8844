package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	required := []string{"--resource-url", "http://127.0.0.1:8080/mcp", "--issuer", "http://127.0.0.1:9000",
		"--introspection-client-id", "example-mcp", "--upstream-userinfo-url", "http://127.0.0.1:9100/userinfo"}
	env := func(secret string) func(string) string {
		return func(k string) string {
			if k == secretEnv {
				return secret
			}
			return ""
		}
	}

	tests := []struct {
		name       string
		args       []string
		env        string
		wantSecret string
		wantScopes []string
		wantErr    string
	}{
		{"the secret comes from the environment by default", required, "from-env", "from-env", []string{"mcp"}, ""},
		{"a secret file wins over the environment, trimmed",
			append(slices.Clone(required), "--introspection-client-secret-file", secretFile), "from-env", "from-file", []string{"mcp"}, ""},
		{"scopes are comma-separated", append(slices.Clone(required), "--scopes", "mcp, files:read"), "s", "s", []string{"mcp", "files:read"}, ""},
		{"no secret at all is an error", required, "", "", nil, "no introspection client secret"},
		{"a missing secret file is an error",
			append(slices.Clone(required), "--introspection-client-secret-file", filepath.Join(dir, "none")), "s", "", nil, "read the introspection client secret"},
		{"a missing required flag is named", required[2:], "s", "", nil, "--resource-url is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.cfg.ClientSecret != tt.wantSecret || !slices.Equal(o.cfg.Scopes, tt.wantScopes) {
				t.Errorf("secret %q scopes %q, want %q %q", o.cfg.ClientSecret, o.cfg.Scopes, tt.wantSecret, tt.wantScopes)
			}
		})
	}
}

func TestToolScopeFlags(t *testing.T) {
	args := []string{"--resource-url", "http://127.0.0.1:8080/mcp", "--issuer", "http://127.0.0.1:9000",
		"--introspection-client-id", "example-mcp", "--upstream-userinfo-url", "http://127.0.0.1:9100/userinfo",
		"--tool-scope", "admin_whoami=tools:admin", "--tool-scope", "whoami=tools:read, profile",
		"--scope-implies", "tools:admin=tools:read", "--filter-tools-list"}
	o, err := parseFlags(args, func(string) string { return "s" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.cfg.ToolScopes["whoami"], []string{"tools:read", "profile"}) || !slices.Equal(o.cfg.ToolScopes["admin_whoami"], []string{"tools:admin"}) ||
		!slices.Equal(o.cfg.ScopeImplies["tools:admin"], []string{"tools:read"}) || !o.cfg.FilterToolsList {
		t.Errorf("parsed %+v %+v %v", o.cfg.ToolScopes, o.cfg.ScopeImplies, o.cfg.FilterToolsList)
	}
	for _, bad := range []string{"noequals", "=x", "tool="} {
		if _, err := parseFlags(append(slices.Clone(args[:8]), "--tool-scope", bad), func(string) string { return "s" }, io.Discard); err == nil {
			t.Errorf("--tool-scope %q accepted", bad)
		}
	}
}

func TestRunStopsWhenItsContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args := []string{"--listen", "127.0.0.1:0", "--resource-url", "http://127.0.0.1:8080/mcp", "--issuer", "http://127.0.0.1:9000",
		"--introspection-client-id", "example-mcp", "--upstream-userinfo-url", "http://127.0.0.1:9100/userinfo"}
	go func() {
		done <- run(ctx, args, func(string) string { return "secret" }, slog.New(slog.DiscardHandler))
	}()
	time.Sleep(50 * time.Millisecond) // let it start serving; the test holds either way
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

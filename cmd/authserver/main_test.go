package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

func TestHelpDocumentsTheFlags(t *testing.T) {
	var out bytes.Buffer
	err := run(t.Context(), []string{"-help"}, func(string) string { return "" }, &out, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("run -help: %v", err)
	}
	for _, want := range []string{"-issuer", "-upstream-type", "-redis-addr", "MCPAUTH_UPSTREAM_CLIENT_SECRET"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
}

func TestRunRefusesAnIncompleteConfiguration(t *testing.T) {
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no upstream client secret", []string{"-upstream-issuer", idp.URL, "-upstream-client-id", "c"}, nil, "MCPAUTH_UPSTREAM_CLIENT_SECRET"},
		{"a secret in a file and in the environment", []string{"-upstream-client-secret-file", "/nonexistent"}, map[string]string{envUpstreamSecret: "s"}, "not both"},
		{"Redis without an encryption key", []string{"-redis-addr", "127.0.0.1:1", "-upstream-issuer", idp.URL, "-upstream-client-id", "c"},
			map[string]string{envUpstreamSecret: "s"}, "MCPAUTH_ENCRYPTION_KEY"},
		{"a short encryption key", []string{"-upstream-issuer", idp.URL, "-upstream-client-id", "c"},
			map[string]string{envUpstreamSecret: "s", envEncryptionKey: "c2hvcnQ="}, "need at least 32"},
		{"a public plain-http issuer", []string{"-issuer", "http://auth.example.com", "-upstream-issuer", idp.URL, "-upstream-client-id", "c"},
			map[string]string{envUpstreamSecret: "s", envEncryptionKey: key}, "must use https"},
		{"an unknown upstream type", []string{"-upstream-type", "myspace", "-upstream-client-id", "c"}, map[string]string{envUpstreamSecret: "s"}, "upstream"},
		{"a stray argument", []string{"serve"}, nil, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			err := run(t.Context(), append([]string{"-listen", "127.0.0.1:0"}, tt.args...), getenv, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestRunServesUntilCancelledThenShutsDown(t *testing.T) {
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	env := map[string]string{envUpstreamSecret: idp.ClientSecret}
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-upstream-issuer", idp.URL, "-upstream-client-id", idp.ClientID},
			func(k string) string { return env[k] }, io.Discard, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not start")
	}
	for _, path := range []string{"/healthz", "/readyz", "/.well-known/oauth-authorization-server", "/metrics"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not shut down")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("the server still answers after shutdown")
	}
}

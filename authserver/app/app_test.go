package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// start runs an App built from yaml (with the test IdP as its upstream) and returns
// its base URL.
func start(t *testing.T, yaml string, env map[string]string) string {
	t.Helper()
	base, _ := startWithIdP(t, yaml, env)
	return base
}

// startWithIdP is start, returning the test IdP too.
func startWithIdP(t *testing.T, yaml string, env map[string]string) (string, *upstreamtest.Server) {
	t.Helper()
	idp := upstreamtest.NewServer(t, upstreamtest.Options{ClientID: "c", ClientSecret: "s"})
	yaml = "issuer: http://127.0.0.1:8080\nupstream: {type: oidc, clientID: c, issuerURL: " + idp.Issuer + "}\n" + yaml
	getenv := func(k string) string {
		if k == config.EnvUpstreamClientSecret {
			return "s"
		}
		return env[k]
	}
	cfg, err := config.Parse([]byte(yaml), getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	a, err := New(ctx, cfg, Options{Getenv: getenv, Logger: slog.New(slog.DiscardHandler), ClientsFilePoll: 50 * time.Millisecond})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	addr, err := a.Listen("127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return "http://" + addr, idp
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func authorize(base, clientID string) string {
	return base + "/oauth/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"},
	}.Encode()
}

func writeClients(t *testing.T, path string, ids ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("clients:\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "- {clientID: %s, redirectURIs: ['http://127.0.0.1/cb'], trusted: true}\n", id)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTheClientsFileIsFollowedAndABrokenOneKeepsThePreviousClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clients.yaml")
	writeClients(t, path, "first")
	base := start(t, "clientsFile: "+path+"\n", nil)

	// A trusted pre-registered client goes straight to the upstream (302); an unknown
	// one gets an error page and no redirect (400).
	if code, body := get(t, authorize(base, "first")); code != http.StatusFound {
		t.Fatalf("first client: %d %s", code, body)
	}
	if code, _ := get(t, authorize(base, "second")); code != http.StatusBadRequest {
		t.Fatalf("unknown client: %d, want 400", code)
	}

	writeClients(t, path, "first", "second")
	waitFor(t, "the second client is registered", func() bool {
		code, _ := get(t, authorize(base, "second"))
		return code == http.StatusFound
	})

	if err := os.WriteFile(path, []byte("clients: [{clientID: broken}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // several polls
	if code, _ := get(t, authorize(base, "second")); code != http.StatusFound {
		t.Fatalf("a broken clients file dropped the clients: %d", code)
	}

	writeClients(t, path, "second")
	waitFor(t, "the first client is removed", func() bool {
		code, _ := get(t, authorize(base, "first"))
		return code == http.StatusBadRequest
	})
}

func TestABrokenClientsFileStopsTheServerAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(path, []byte("clients: [{clientID: x, redirectURIs: ['javascript:alert(1)']}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	cfg, err := config.Parse([]byte("issuer: http://127.0.0.1:8080\nclientsFile: "+path+"\nupstream: {type: oidc, clientID: c, issuerURL: "+idp.Issuer+"}\n"), os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == config.EnvUpstreamClientSecret {
			return "s"
		}
		return ""
	}
	_, err = New(t.Context(), cfg, Options{Getenv: getenv, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "redirectURIs[0]") {
		t.Fatalf("New: %v, want an error naming the redirect URI", err)
	}
}

func TestTheRedisStoreIsWiredAndItsEvictionPolicyReachesReadyz(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	for _, tt := range []struct {
		policy string
		code   int
		body   string
	}{
		{"noeviction", http.StatusOK, "ok"},
		{"allkeys-lru", http.StatusServiceUnavailable, "allkeys-lru"},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			srv := redisserver.Start(t, redisserver.Options{MaxMemoryPolicy: tt.policy})
			// Replicas on Redis share their signing keys through the file.
			keys := filepath.Join(t.TempDir(), "signing-keys.json")
			writeSigningKeys(t, keys, signingKey(t, "k1", time.Now().Add(-time.Minute), time.Time{}))
			base := start(t, "secrets: {signingKeysFile: "+keys+"}\n", map[string]string{
				config.EnvSessionProvider: "redis", config.EnvSessionRedisURL: "redis://" + srv.Addr + "/3",
				config.EnvEncryptionKey: key,
			})
			code, body := get(t, base+"/readyz")
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Fatalf("/readyz: %d %q, want %d mentioning %q", code, body, tt.code, tt.body)
			}
		})
	}
}

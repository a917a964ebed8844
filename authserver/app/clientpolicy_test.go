package app

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// The clientPolicy section reaches the server, and the registry's approvals (here the
// clients file, in Kubernetes the operator's Secret) approve a held client, on both
// stores.
func TestApprovalModeAndRegistryApprovalsAreWired(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	for _, tc := range []struct {
		name string
		env  func(t *testing.T) map[string]string
	}{
		{"memory", func(*testing.T) map[string]string { return nil }},
		{"redis", func(t *testing.T) map[string]string {
			srv := redisserver.Start(t, redisserver.Options{})
			return map[string]string{config.EnvSessionProvider: "redis", config.EnvSessionRedisURL: "redis://" + srv.Addr + "/4", config.EnvEncryptionKey: key}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "clients.yaml")
			writeClientsFile(t, path, "clients: []\n")
			// The token format is beside the point here: opaque needs no keys file on Redis.
			base := start(t, "tokens: {accessTokenFormat: opaque}\nclientsFile: "+path+"\nclientPolicy:\n  requireApproval: true\n  redirectURIPatterns: ['http://127.0.0.1/*']\n", tc.env(t))

			// The redirect URI patterns apply to registration.
			if code, body := post(t, base+"/oauth/register", `{"redirect_uris":["https://elsewhere.example/cb"],"token_endpoint_auth_method":"none"}`); code != http.StatusBadRequest || !strings.Contains(body, "invalid_redirect_uri") {
				t.Fatalf("registration outside the patterns: %d %s", code, body)
			}
			code, body := post(t, base+"/oauth/register", `{"client_name":"Held","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`)
			if code != http.StatusCreated {
				t.Fatalf("register: %d %s", code, body)
			}
			var reg struct {
				ClientID string `json:"client_id"`
			}
			if err := json.Unmarshal([]byte(body), &reg); err != nil {
				t.Fatal(err)
			}
			if code, body := get(t, authorize(base, reg.ClientID)); code != http.StatusForbidden || !strings.Contains(body, "Waiting for approval") {
				t.Fatalf("a new client in approval mode: %d %s", code, body)
			}

			writeClientsFile(t, path, "clients: []\napprovals:\n- {clientID: "+reg.ClientID+", approvedBy: test}\n")
			waitFor(t, "the registry approves the client", func() bool {
				code, body := get(t, authorize(base, reg.ClientID))
				return code == http.StatusOK && strings.Contains(body, "Held")
			})
		})
	}
}

func writeClientsFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func post(t *testing.T, u, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

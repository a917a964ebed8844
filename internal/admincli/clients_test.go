package admincli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// registerJSON makes a dynamic registration at s from its JSON body and returns
// its client ID.
func (s *server) registerJSON(body string) string {
	s.t.Helper()
	resp, err := http.Post(s.issuer+"/oauth/register", "application/json", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ClientID string `json:"client_id"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&out) != nil {
		s.t.Fatalf("register: %s", resp.Status)
	}
	return out.ClientID
}

func TestCLIListsDynamicRegistrations(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			addr := ""
			if backend == "redis" {
				addr = redisserver.Start(t).Addr
			}
			s := startServer(t, addr)
			if out := s.admin("clients"); strings.TrimSpace(out) != "no dynamic registrations" {
				t.Errorf("clients of a fresh server: %q", out)
			}
			first := s.registerJSON(`{"client_name":"Claude Desktop","redirect_uris":["http://127.0.0.1/cb","https://app.example/cb"],"token_endpoint_auth_method":"none"}`)
			second := s.registerJSON(`{"redirect_uris":["https://other.example/cb"]}`)

			table := s.admin("clients")
			lines := strings.Split(strings.TrimSpace(table), "\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "CLIENT") || !strings.Contains(lines[0], "LAST USED") ||
				!strings.Contains(lines[0], "SOURCE") || !strings.Contains(lines[0], "REDIRECT URIS") {
				t.Fatalf("clients:\n%s\nwant a header and two registrations", table)
			}
			if !strings.HasPrefix(lines[1], first) || !strings.Contains(lines[1], "Claude Desktop") || !strings.Contains(lines[1], "never") ||
				!strings.Contains(lines[1], "127.0.0.1") || !strings.Contains(lines[1], "http://127.0.0.1/cb,https://app.example/cb") {
				t.Errorf("first row %q", lines[1])
			}
			if !strings.HasPrefix(lines[2], second) || !strings.Contains(lines[2], " - ") || !strings.Contains(lines[2], "https://other.example/cb") {
				t.Errorf("second row %q: no name shows as -", lines[2])
			}

			var list adminapi.ClientList
			if err := json.Unmarshal([]byte(s.admin("clients", "--json")), &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Clients) != 2 || list.Clients[0].ID != first || list.Clients[1].ID != second ||
				list.Clients[0].Source != "127.0.0.1" || !list.Clients[0].LastUsedAt.IsZero() ||
				!list.Clients[0].ExpiresAt.After(list.Clients[0].CreatedAt) || len(list.Clients[0].RedirectURIs) != 2 {
				t.Errorf("clients --json: %+v", list.Clients)
			}

		})
	}
}

func TestCLIClientsTakesNoSelector(t *testing.T) {
	code, _, errOut := cli(t, nil, "admin", "clients", "--user", "alice")
	if code != ExitUsage || !strings.Contains(errOut, "clients takes no --user") {
		t.Errorf("exit %d, %q", code, errOut)
	}
}

// TestPrintableKeepsTerminalControlsOut: the server refuses control characters in
// client names, and the table does not rely on it.
func TestPrintableKeepsTerminalControlsOut(t *testing.T) {
	if got := printable("a\x1b[2Jb\u009bc\x7fd é"); got != "a?[2Jb?c?d é" {
		t.Errorf("printable: %q", got)
	}
}

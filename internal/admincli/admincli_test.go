package admincli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
	"github.com/mcpauth/mcpauth/authserver/app"
	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
	"github.com/mcpauth/mcpauth/internal/testutil/signingkeys"
)

const (
	adminToken     = "test-admin-token-0123456789abcdef0123456789"
	clientRedirect = "http://127.0.0.1:9/cb"
	mcpSecret      = "mcp-server-secret-0123456789abcdef0123"
)

// server is a running authorization server, built from a configuration file exactly
// as cmd/authserver builds it, with the test IdP as its upstream.
type server struct {
	t         *testing.T
	issuer    string
	idp       *upstreamtest.Server
	tokenFile string
}

// startServer runs the server with store ("memory", or a Redis address).
func startServer(t *testing.T, redisAddr string) *server {
	t.Helper()
	return startServerWith(t, redisAddr, "")
}

// startServerWith is startServer with more configuration appended.
func startServerWith(t *testing.T, redisAddr, extra string) *server {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile := write("admin-token", adminToken+"\n")
	keyFile := write("key", base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	port := freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", port)
	store, signing := "store: {type: memory}\n", ""
	if redisAddr != "" {
		store = "store: {type: redis, redis: {url: 'redis://" + redisAddr + "'}}\n"
		keys, err := signingkeys.WriteNew(dir)
		if err != nil {
			t.Fatal(err)
		}
		signing = ", signingKeysFile: " + keys
	}
	yaml := "issuer: " + issuer + "\nlistenAddress: 127.0.0.1:" + fmt.Sprint(port) + "\n" +
		"upstream: {type: oidc, clientID: " + idp.ClientID + ", issuerURL: " + idp.Issuer + "}\n" + store +
		"secrets: {adminTokenFile: " + tokenFile + ", encryptionKeyFile: " + keyFile + signing + "}\n" +
		"clients:\n" +
		"  - {clientID: desktop, trusted: true, redirectURIs: ['" + clientRedirect + "']}\n" +
		"  - {clientID: ide, trusted: true, redirectURIs: ['" + clientRedirect + "']}\n" +
		"  - {clientID: mcp-server, secretHash: '" + config.HashClientSecret(mcpSecret) + "', redirectURIs: ['" + clientRedirect + "']}\n" + extra
	getenv := func(k string) string {
		if k == config.EnvUpstreamClientSecret {
			return idp.ClientSecret
		}
		return ""
	}
	cfg, err := config.Parse([]byte(yaml), getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, app.Options{Getenv: getenv, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if _, err := a.Listen(""); err != nil {
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
	return &server{t: t, issuer: issuer, idp: idp, tokenFile: tokenFile}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// login runs the authorization-code flow as an MCP client would, for user at the
// upstream, and returns the tokens.
func (s *server) login(user, clientID string) *oauth2.Token {
	s.t.Helper()
	s.idp.SetUser(upstreamtest.User{Subject: user, Email: user + "@example.com"})
	conf := &oauth2.Config{
		ClientID: clientID, RedirectURL: clientRedirect,
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/oauth/authorize", TokenURL: s.issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), clientRedirect) {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := browser.Get(conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if back == nil || back.Query().Get("code") == "" {
		s.t.Fatalf("the login ended at %s with %d: %.300s", resp.Request.URL, resp.StatusCode, body)
	}
	tok, err := conf.Exchange(s.t.Context(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// active introspects tok as the MCP server.
func (s *server) active(tok *oauth2.Token) bool {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.issuer+"/oauth/introspect", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("mcp-server", mcpSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Active bool `json:"active"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		s.t.Fatalf("introspect: %s", resp.Status)
	}
	return out.Active
}

// cli runs the command line with env (MCPAUTH_ADMIN_TOKEN and friends) and returns
// its exit code, stdout and stderr.
func cli(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

// admin runs `mcpauth admin args... --server <issuer> --token-file <file>` and
// fails the test unless it succeeds.
func (s *server) admin(args ...string) string {
	s.t.Helper()
	code, out, errOut := cli(s.t, nil, append(append([]string{"admin"}, args...), "--server", s.issuer, "--token-file", s.tokenFile)...)
	if code != ExitOK {
		s.t.Fatalf("mcpauth admin %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func (s *server) grantsJSON(args ...string) []adminapi.Grant {
	s.t.Helper()
	var list adminapi.GrantList
	if err := json.Unmarshal([]byte(s.admin(append([]string{"grants", "--json"}, args...)...)), &list); err != nil {
		s.t.Fatal(err)
	}
	return list.Grants
}

func TestCLIRevokesByUserClientAndProvider(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			addr := ""
			if backend == "redis" {
				addr = redisserver.Start(t).Addr
			}
			s := startServer(t, addr)
			aliceDesktop := s.login("alice", "desktop")
			aliceIDE := s.login("alice", "ide")
			bobDesktop := s.login("bob", "desktop")
			bobIDE := s.login("bob", "ide")
			carolIDE := s.login("carol", "ide")

			// The list shows alice's two grants, in a table and in JSON.
			table := s.admin("grants", "--user", "alice")
			if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "GRANT") ||
				!strings.Contains(table, "desktop") || !strings.Contains(table, "ide") || strings.Contains(table, "bob") {
				t.Errorf("grants --user alice:\n%s\nwant a header and alice's two grants", table)
			}
			if g := s.grantsJSON("--user", "alice"); len(g) != 2 || g[0].UserID != "alice" || g[1].UserID != "alice" {
				t.Errorf("grants --user alice --json: %+v", g)
			}
			if g := s.grantsJSON("--client", "ide"); len(g) != 3 {
				t.Errorf("grants --client ide: %d grants, want 3", len(g))
			}
			if g := s.grantsJSON("--all"); len(g) != 5 {
				t.Errorf("grants --all: %d grants, want 5", len(g))
			}

			// By user.
			if out := s.admin("revoke", "--user", "alice"); !strings.Contains(out, "revoked 2 grants of user alice") {
				t.Errorf("revoke --user alice: %q", out)
			}
			if s.active(aliceDesktop) || s.active(aliceIDE) || !s.active(bobDesktop) {
				t.Fatal("after revoking alice: her tokens must be inactive, bob's active")
			}
			if out := s.admin("grants", "--user", "alice"); strings.TrimSpace(out) != "no grants" {
				t.Errorf("alice's grants after revocation: %q", out)
			}

			// By client.
			if out := s.admin("revoke", "--client", "ide"); !strings.Contains(out, "revoked 2 grants of client ide") {
				t.Errorf("revoke --client ide: %q", out)
			}
			if s.active(bobIDE) || s.active(carolIDE) || !s.active(bobDesktop) {
				t.Fatal("after revoking ide: its tokens must be inactive, bob's desktop token active")
			}

			// The whole provider.
			if out := s.admin("revoke", "--all"); !strings.Contains(out, "revoked 1 grant of the whole provider") {
				t.Errorf("revoke --all: %q", out)
			}
			if s.active(bobDesktop) || len(s.grantsJSON("--all")) != 0 {
				t.Fatal("after revoking all, a token or grant lives on")
			}
			// A refresh token of a revoked grant is refused too.
			conf := &oauth2.Config{ClientID: "desktop", Endpoint: oauth2.Endpoint{TokenURL: s.issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
			bobDesktop.Expiry = bobDesktop.Expiry.AddDate(-1, 0, 0)
			if _, err := conf.TokenSource(t.Context(), bobDesktop).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
				t.Errorf("refresh after revoke --all: %v, want invalid_grant", err)
			}
		})
	}
}

func TestCLITakesTheTokenFromTheEnvironment(t *testing.T) {
	s := startServer(t, "")
	s.login("alice", "desktop")
	code, out, errOut := cli(t, map[string]string{EnvAdminToken: adminToken, EnvServer: s.issuer}, "admin", "grants", "--user", "alice")
	if code != ExitOK || !strings.Contains(out, "alice") {
		t.Errorf("exit %d, out %q, err %q", code, out, errOut)
	}
}

func TestCLISkipsTLSVerificationOnlyWhenAsked(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+adminToken || r.URL.Path != adminapi.PathRevoke {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"revoked":3,"upstream_tokens_deleted":2}`))
	}))
	defer ts.Close()
	env := map[string]string{EnvAdminToken: adminToken, EnvServer: ts.URL}
	if code, _, errOut := cli(t, env, "admin", "revoke", "--all"); code != ExitFailed || !strings.Contains(errOut, "certificate") {
		t.Errorf("an untrusted certificate: exit %d, %q; want a failure naming the certificate", code, errOut)
	}
	code, out, errOut := cli(t, env, "admin", "revoke", "--all", "--insecure-skip-tls-verify")
	if code != ExitOK || out != "revoked 3 grants of the whole provider; deleted 2 upstream tokens\n" {
		t.Errorf("--insecure-skip-tls-verify: exit %d, %q, %q", code, out, errOut)
	}
}

func TestCLISaysWhatWentWrong(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong")
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(wrong, []byte(strings.Repeat("x", 40)), 0o600)
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	down := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no command", nil, nil, ExitUsage, "Usage:"},
		{"an unknown command", nil, []string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{"admin alone", nil, []string{"admin"}, ExitUsage, "admin needs a command"},
		{"an unknown admin command", nil, []string{"admin", "delete"}, ExitUsage, `unknown admin command "delete"`},
		{"revoke without a selector", nil, []string{"admin", "revoke", "--server", s.issuer, "--token-file", s.tokenFile}, ExitUsage, "exactly one of --user, --client or --all"},
		{"revoke with two selectors", nil, []string{"admin", "revoke", "--user", "a", "--all", "--token-file", s.tokenFile}, ExitUsage, "exactly one of"},
		{"grants without a selector", nil, []string{"admin", "grants", "--token-file", s.tokenFile}, ExitUsage, "grants needs --user, --client or --all"},
		{"an unknown flag", nil, []string{"admin", "grants", "--usr", "a"}, ExitUsage, "flag provided but not defined: -usr"},
		{"a stray argument", nil, []string{"admin", "grants", "--user", "a", "extra"}, ExitUsage, `unexpected argument "extra"`},
		{"no token", nil, []string{"admin", "grants", "--user", "a", "--server", s.issuer}, ExitUsage, "no admin token: pass --token-file or set MCPAUTH_ADMIN_TOKEN"},
		{"a missing token file", nil, []string{"admin", "grants", "--user", "a", "--token-file", filepath.Join(dir, "nope")}, ExitUsage, "--token-file: open"},
		{"an empty token file", nil, []string{"admin", "grants", "--user", "a", "--token-file", empty}, ExitUsage, "is empty"},
		{"a bad server URL", nil, []string{"admin", "grants", "--user", "a", "--server", "ftp://x", "--token-file", s.tokenFile}, ExitUsage, "is not an http(s) URL"},
		{"a wrong token", nil, []string{"admin", "revoke", "--all", "--server", s.issuer, "--token-file", wrong}, ExitFailed, "refused the admin token (401)"},
		{"a server that is down", nil, []string{"admin", "revoke", "--all", "--server", down, "--token-file", s.tokenFile}, ExitFailed, "cannot reach the server"},
		{"a server path that is not the issuer", nil, []string{"admin", "grants", "--all", "--server", s.issuer + "/elsewhere", "--token-file", s.tokenFile}, ExitFailed, "no admin API at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := cli(t, tt.env, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d mentioning %q", code, out, errOut, tt.code, tt.want)
			}
		})
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"admin", "--help"}, {"admin", "revoke", "-h"}} {
		if code, out, _ := cli(t, nil, args...); code != ExitOK || !strings.Contains(out, "mcpauth admin revoke --user USER | --client CLIENT | --all") {
			t.Errorf("%v: exit %d, %q; want the usage on stdout", args, code, out)
		}
	}
}

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/examples/mcpserver/server"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
	"github.com/mcpauth/mcpauth/internal/testutil/signingkeys"
)

// system is everything the MCP clients talk to, running.
type system struct {
	issuer   string   // the public issuer: the round-robin proxy's URL
	mcpURL   string   // the example MCP server's endpoint, its resource identifier
	backends []string // the authorization server replicas' addresses
	proxy    *roundRobin
	cimd     cimdServer
	password string // the upstream test user's
	// serverErrors counts ERROR lines in the replicas' logs.
	serverErrors *atomic.Int64
}

// startSystem starts every component, each stopped at the test's cleanup: Redis, the
// upstream OpenID provider, the metadata document server, the authorization server
// replicas behind the proxy, and the example MCP server.
func startSystem(ctx context.Context, t *testing.T, node, nodeDir string) *system {
	t.Helper()
	began := time.Now()
	root := moduleRoot(t)

	// Build the server binary while the other components start.
	authserverBin := filepath.Join(t.TempDir(), "authserver")
	var buildErr error
	built := make(chan struct{})
	go func() { buildErr = goBuild(ctx, root, authserverBin, "./cmd/authserver"); close(built) }()
	t.Cleanup(func() { <-built }) // the build finishes before its directory is removed

	rds := redisserver.Start(t)

	// The proxy's address is the public issuer; bind it first so every component can be
	// told the URL.
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &system{issuer: "http://" + proxyLn.Addr().String(), password: randomHex(t), serverErrors: new(atomic.Int64)}

	dir := t.TempDir()
	upstreamSecret, mcpSecret := randomHex(t), randomHex(t)
	idp := startIdP(ctx, t, node, nodeDir, s.issuer+"/oauth/callback", upstreamSecret, s.password)
	s.cimd = startCIMDServer(t, dir)
	t.Logf("upstream provider %s, client metadata document %s (%s)", idp.Issuer, s.cimd.ClientID, time.Since(began).Round(time.Millisecond))

	// The replicas share Redis, so they sign with the keys of one file.
	keysFile, err := signingkeys.WriteNew(dir)
	if err != nil {
		t.Fatal(err)
	}
	configFile := writeFile(t, dir, "authserver.yaml", fmt.Sprintf(`issuer: %s
listenAddress: 127.0.0.1:0
displayName: mcpauth end-to-end
upstream:
  type: oidc
  clientID: %s
  issuerURL: %s
dynamicRegistration:
  enabled: true
clientIDMetadataDocuments:
  enabled: true
  allowPrivateAddresses: true
clients:
  - clientID: %s
    clientName: end-to-end MCP server
    secretFile: %s
    redirectURIs: ["https://mcp-server.invalid/unused"]
    introspectUpstream: true
secrets:
  signingKeysFile: %s
`, s.issuer, upstreamClientID, idp.Issuer, mcpServerClient, writeFile(t, dir, "mcp-server-secret", mcpSecret), keysFile))
	env := []string{
		"SESSION_PROVIDER=redis",
		"SESSION_REDIS_URL=redis://" + rds.Addr + "/0",
		"MCPAUTH_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(randomBytes(t, 32)),
		"MCPAUTH_UPSTREAM_CLIENT_SECRET=" + upstreamSecret,
		"OAUTH_ACCESS_TOKEN_TTL=" + strconv.Itoa(accessTokenTTL),
		// Go reads the roots from this file on Linux: the replicas then trust the test's
		// https server for Client ID Metadata Documents, and nothing else.
		"SSL_CERT_FILE=" + s.cimd.CAFile,
	}
	<-built
	if buildErr != nil {
		t.Fatalf("build the authorization server: %v", buildErr)
	}
	t.Logf("authorization server built (%s)", time.Since(began).Round(time.Millisecond))

	for i := range replicas {
		name := fmt.Sprintf("authserver-%d", i+1)
		p := startProcess(t, name, dir, env, authserverBin, "--config", configFile, "--log-level", "debug")
		p.stderr.watch(func(line string) {
			if strings.Contains(line, `"level":"ERROR"`) {
				s.serverErrors.Add(1)
			}
		})
		s.backends = append(s.backends, awaitListening(ctx, t, p))
	}
	for _, b := range s.backends {
		awaitReady(ctx, t, "http://"+b+"/readyz")
	}
	s.proxy = newRoundRobin(s.backends)
	proxy := &http.Server{Handler: s.proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = proxy.Serve(proxyLn) }()
	t.Cleanup(func() { _ = proxy.Close() })

	s.mcpURL = startMCPServer(t, s.issuer, mcpSecret, idp.UserinfoEndpoint)
	t.Logf("authorization servers %v behind %s, MCP server %s (%s)", s.backends, s.issuer, s.mcpURL, time.Since(began).Round(time.Millisecond))
	return s
}

// requireNode returns the node binary and the directory of the Node scripts, whose
// packages must be installed (npm ci, which `make install-deps` runs). Without them
// the test is skipped, except under CI, where it must fail rather than pass untested.
func requireNode(t *testing.T) (string, string) {
	t.Helper()
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	var missing string
	if err != nil {
		missing = "node (Node.js 20.19 or later) is not on PATH"
	} else {
		missing = checkNodePackages(dir)
	}
	if missing == "" {
		return node, dir
	}
	msg := missing + ": run `make install-deps` (it runs npm ci in test/e2e/node)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return "", ""
}

// readInputs reads every file this test's outcome depends on, for `go test`'s cache.
// The cache keys a result on the test binary and on the files (inside the module) and
// environment variables the test process reads. This test runs what it checks, a server
// binary built from the tree and the Node scripts, rather than linking or reading it,
// so without this a cached pass would survive any change to the server. Reading the
// module's Go sources (tests aside), go.mod, go.sum and the Node scripts and lockfile
// makes a change to any of them run the test again.
func readInputs(t *testing.T, root, nodeDir string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		input := strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") || name == "go.mod" || name == "go.sum" ||
			(filepath.Dir(p) == nodeDir && (strings.HasSuffix(name, ".mjs") || strings.HasSuffix(name, ".json")))
		if input {
			_, err = os.ReadFile(p)
		}
		return err
	})
	if err != nil {
		t.Fatalf("read the test's inputs: %v", err)
	}
}

// checkNodePackages compares the packages installed in dir/node_modules with the exact
// versions package.json pins, and says what is missing or stale.
func checkNodePackages(dir string) string {
	var manifest struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err == nil {
		err = json.Unmarshal(b, &manifest)
	}
	if err != nil {
		return fmt.Sprintf("read %s/package.json: %v", dir, err)
	}
	for pkg, want := range manifest.Dependencies {
		var installed struct {
			Version string `json:"version"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
		if err != nil {
			return fmt.Sprintf("the Node package %s is not installed in %s", pkg, dir)
		}
		if err := json.Unmarshal(b, &installed); err != nil || installed.Version != want {
			return fmt.Sprintf("the Node package %s in %s is version %q, package.json pins %s", pkg, dir, installed.Version, want)
		}
	}
	return ""
}

// moduleRoot is the repository's root, two levels up from this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// goBuild builds a package of the module at root into out.
func goBuild(ctx context.Context, root, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// idpInfo is what the upstream provider script prints when it is ready.
type idpInfo struct {
	Issuer           string `json:"issuer"`
	UserinfoEndpoint string `json:"userinfo_endpoint"`
}

// startIdP starts oidc-provider with our server as its one client and the test user.
func startIdP(ctx context.Context, t *testing.T, node, nodeDir, redirectURI, clientSecret, password string) idpInfo {
	t.Helper()
	p := startProcess(t, "upstream-idp", nodeDir, []string{
		"IDP_CLIENT_ID=" + upstreamClientID,
		"IDP_CLIENT_SECRET=" + clientSecret,
		"IDP_REDIRECT_URI=" + redirectURI,
		"IDP_USER_LOGIN=" + userLogin,
		"IDP_USER_PASSWORD=" + password,
		"IDP_USER_SUB=" + userSub,
		"IDP_USER_EMAIL=" + userEmail,
		"IDP_USER_NAME=" + userName,
	}, node, "upstream-idp.mjs")
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	line, err := p.stdout.await(wctx, p.done, func(l string) bool { return strings.HasPrefix(l, `{"issuer"`) })
	if err != nil {
		t.Fatalf("the upstream provider did not start: %v (%s)", err, p.exited())
	}
	var info idpInfo
	if err := json.Unmarshal([]byte(line), &info); err != nil || info.Issuer == "" || info.UserinfoEndpoint == "" {
		t.Fatalf("the upstream provider printed %q: %v", line, err)
	}
	return info
}

// cimdServer serves the Client ID Metadata Document over https.
type cimdServer struct {
	ClientID string        // the document's URL, which is the client_id
	CAFile   string        // PEM of the server's certificate, for SSL_CERT_FILE
	Fetches  *atomic.Int64 // how many times the document was fetched
}

// startCIMDServer serves the document of a public native client whose redirect URI is
// a loopback URI without a port: the client picks its port at run time, and the server
// must accept any (RFC 8252 §7.3).
func startCIMDServer(t *testing.T, dir string) cimdServer {
	t.Helper()
	var fetches atomic.Int64
	const path = "/clients/mcpauth-e2e.json"
	var clientID string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=60")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id":                  clientID,
			"client_name":                "mcpauth e2e CIMD client",
			"redirect_uris":              []string{"http://127.0.0.1/callback"},
			"grant_types":                []string{"authorization_code", "refresh_token"},
			"response_types":             []string{"code"},
			"token_endpoint_auth_method": "none",
			"application_type":           "native",
		})
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	clientID = srv.URL + path
	caFile := writeFile(t, dir, "cimd-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	return cimdServer{ClientID: clientID, CAFile: caFile, Fetches: &fetches}
}

// awaitListening returns the address an authorization server process bound, from its
// start-up log line.
func awaitListening(ctx context.Context, t *testing.T, p *process) string {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	line, err := p.stderr.await(wctx, p.done, func(l string) bool {
		return strings.Contains(l, `"msg":"authorization server listening"`)
	})
	if err != nil {
		t.Fatalf("%s did not start listening: %v (%s)", p.name, err, p.exited())
	}
	var rec struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Address == "" {
		t.Fatalf("%s: no address in %q: %v", p.name, line, err)
	}
	return rec.Address
}

// awaitReady polls a readiness endpoint until it answers 200.
func awaitReady(ctx context.Context, t *testing.T, url string) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last string
	for {
		req, _ := http.NewRequestWithContext(wctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body)
		} else {
			last = err.Error()
		}
		select {
		case <-wctx.Done():
			t.Fatalf("%s never became ready: %s", url, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startMCPServer runs the example MCP server in process and returns its MCP endpoint.
func startMCPServer(t *testing.T, issuer, secret, userinfo string, mods ...func(*server.Config)) string {
	t.Helper()
	logs := newLogWriter(t, "mcpserver")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resourceURL := "http://" + ln.Addr().String() + "/mcp"
	cfg := server.Config{
		ResourceURL:         resourceURL,
		Issuer:              issuer,
		ClientID:            mcpServerClient,
		ClientSecret:        secret,
		UpstreamUserinfoURL: userinfo,
		Logger:              slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mods {
		m(&cfg)
	}
	h, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return resourceURL
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomHex(t *testing.T) string { return hex.EncodeToString(randomBytes(t, 32)) }

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

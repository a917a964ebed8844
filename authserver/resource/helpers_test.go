package resource

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	testResource = "https://mcp.example.com/mcp"
	testPRMURL   = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
	testClientID = "mcp:server"   // a colon, so Basic credentials must be form-encoded
	testSecret   = "s3cr%t:x y+z" // likewise
)

// fakeAS is an httptest authorization server: RFC 8414 metadata and RFC 7662
// introspection over a table of tokens, counting what it is asked.
type fakeAS struct {
	srv    *httptest.Server
	issuer string

	introspections atomic.Int32
	discoveries    atomic.Int32
	jwksFetches    atomic.Int32
	feedReads      atomic.Int32

	// The JWT side (jwt_helpers_test.go): the published keys and the revocation feed.
	jwks       jose.JSONWebKeySet
	revoked    []map[string]any // the feed's entries; the cursor is an index into it
	feedStatus int              // when set, the feed answers with it
	feedSince  []string         // the since parameter of every feed read

	mu         sync.Mutex
	tokens     map[string]map[string]any // token → introspection answer
	status     int                       // when set, introspection answers with it
	metaIssuer string                    // when set, the metadata names this issuer
	block      chan struct{}             // when set, introspection waits for it to close
	lastReq    *http.Request
	lastForm   url.Values
}

func newFakeAS(t testing.TB) *fakeAS {
	t.Helper()
	as := &fakeAS{tokens: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", as.metadata)
	mux.HandleFunc("POST /oauth/introspect", as.introspect)
	mux.HandleFunc("GET /oauth/jwks", as.serveJWKS)
	mux.HandleFunc("GET /oauth/revocations", as.serveRevocations)
	mux.HandleFunc("POST /garbage", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) })
	as.srv = httptest.NewServer(mux)
	as.issuer = as.srv.URL
	t.Cleanup(as.srv.Close)
	return as
}

func (as *fakeAS) metadata(w http.ResponseWriter, _ *http.Request) {
	as.discoveries.Add(1)
	as.mu.Lock()
	issuer := as.issuer
	if as.metaIssuer != "" {
		issuer = as.metaIssuer
	}
	as.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                 issuer,
		"introspection_endpoint": as.issuer + "/oauth/introspect",
		"jwks_uri":               as.issuer + "/oauth/jwks",
	})
}

func (as *fakeAS) introspect(w http.ResponseWriter, r *http.Request) {
	as.introspections.Add(1)
	as.mu.Lock()
	block, status := as.block, as.status
	as.mu.Unlock()
	if block != nil {
		<-block
	}
	_ = r.ParseForm()
	as.mu.Lock()
	as.lastReq, as.lastForm = r, r.PostForm
	answer, known := as.tokens[r.PostForm.Get("token")]
	as.mu.Unlock()
	if status != 0 {
		http.Error(w, "broken", status)
		return
	}
	// Like the real server: Basic credentials, form-decoded (RFC 6749 §2.3.1).
	if id, secret, ok := decodeBasic(r.Header.Get("Authorization")); !ok || id != testClientID || secret != testSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if !known {
		answer = map[string]any{"active": false}
	}
	writeJSON(w, http.StatusOK, answer)
}

func decodeBasic(h string) (id, secret string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
	if err != nil {
		return "", "", false
	}
	rawID, rawSecret, found := strings.Cut(string(raw), ":")
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	return id, secret, found && err1 == nil && err2 == nil
}

// set registers token with the answer of an active access token for testResource,
// changed by edit.
func (as *fakeAS) set(token string, now time.Time, edit func(map[string]any)) {
	answer := map[string]any{
		"active":                    true,
		"token_type":                "Bearer",
		"sub":                       "user-1",
		"client_id":                 "client-1",
		"scope":                     "mcp",
		"aud":                       []string{testResource},
		"iss":                       as.issuer,
		"iat":                       now.Unix(),
		"exp":                       now.Add(15 * time.Minute).Unix(),
		"upstream_access_token":     "upstream-" + token,
		"upstream_token_expires_at": now.Add(time.Hour).Unix(),
		"upstream_provider":         "github",
	}
	if edit != nil {
		edit(answer)
	}
	as.mu.Lock()
	as.tokens[token] = answer
	as.mu.Unlock()
}

func (as *fakeAS) setStatus(status int) {
	as.mu.Lock()
	as.status = status
	as.mu.Unlock()
}

// fakeClock is a settable Config.Now. It starts at the real time, since the Go MCP
// SDK checks expiry against time.Now itself.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestVerifier returns a Verifier for testResource against as, changed by edit.
func newTestVerifier(t testing.TB, as *fakeAS, clock *fakeClock, edit func(*Config)) *Verifier {
	t.Helper()
	cfg := Config{
		Resource:              testResource,
		AuthorizationServers:  []string{as.issuer},
		IntrospectionEndpoint: as.issuer + "/oauth/introspect",
		ClientID:              testClientID,
		ClientSecret:          testSecret,
		RequiredScopes:        []string{"mcp"},
		ResourceName:          "Example MCP server",
		ResourceDocumentation: "https://docs.example.com/mcp",
		Now:                   clock.Now,
		Logger:                slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// serve sends r through h and returns the recorded response.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func bearerRequest(target, token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(`{}`))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// okHandler answers 200 "ok".
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, b)
	}
	return m
}

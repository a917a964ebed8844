package faults

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

// The clients of every test: a trusted public MCP client (no consent page, so a login
// is a chain of redirects) and a resource server that introspects.
const (
	clientID     = "fault-app"
	redirectURI  = "http://127.0.0.1/cb"
	redirectUsed = "http://127.0.0.1:9/cb" // RFC 8252 §7.3: any port; nothing listens
	rsID         = "fault-rs"
	rsSecret     = "fault-rs-secret-0123456789"
	scope        = "mcp"
)

var masterKey = []byte("fault-tests-master-key-0123456789abcdef")

// quietRedis drops go-redis's own log lines: one per failed dial while Redis is down.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	goredis.SetLogger(quietRedis{})
	os.Exit(m.Run())
}

// target is an authorization server as its clients see it: an issuer URL and an HTTP
// client that records every answer the server gives.
type target struct {
	issuer string
	http   *http.Client
	log    *statusLog
}

// startInProcess serves an authserver.Server over st on a loopback listener, with a
// fake OIDC upstream.
func startInProcess(t *testing.T, st store.Store) (*target, *upstreamtest.Server) {
	t.Helper()
	var srv atomic.Pointer[authserver.Server]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.Load().Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	prov, err := upstream.New(t.Context(), idp.OIDCConfig(front.URL+authserver.DefaultCallbackPath))
	if err != nil {
		t.Fatal(err)
	}
	clients, err := authserver.NewStaticClients(
		authserver.StaticClient{ID: clientID, RedirectURIs: []string{redirectURI}, Trusted: true},
		authserver.StaticClient{ID: rsID, Secret: rsSecret, RedirectURIs: []string{redirectURI}},
	)
	if err != nil {
		t.Fatal(err)
	}
	s, err := authserver.New(authserver.Options{
		Issuer: front.URL, ScopesSupported: []string{scope}, DefaultScopes: []string{scope},
		Store: st, Upstream: prov, MasterKey: masterKey, Clients: clients, DynamicRegistration: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Store(s)
	return newTarget(front.URL), idp
}

func newTarget(issuer string) *target {
	log := &statusLog{}
	u, _ := url.Parse(issuer)
	rt := &recordingTransport{next: &http.Transport{MaxIdleConnsPerHost: 64}, log: log, host: u.Host, started: map[string]int{}}
	return &target{issuer: issuer, log: log, http: &http.Client{Transport: rt, Timeout: 30 * time.Second}}
}

// statusLog records every response of the authorization server.
type statusLog struct {
	mu      sync.Mutex
	answers []answer
}

type answer struct {
	at     time.Time
	path   string
	status int
	body   string // of 5xx answers only
}

func (l *statusLog) add(a answer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers = append(l.answers, a)
}

// since returns the answers recorded at or after t.
func (l *statusLog) since(t time.Time) []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []answer
	for _, a := range l.answers {
		if !a.at.Before(t) {
			out = append(out, a)
		}
	}
	return out
}

// recordingTransport records the answers of the issuer's host (not the upstream's).
type recordingTransport struct {
	next http.RoundTripper
	log  *statusLog
	host string // the issuer's

	mu      sync.Mutex
	started map[string]int // requests sent, by path
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == rt.host {
		rt.mu.Lock()
		rt.started[req.URL.Path]++
		rt.mu.Unlock()
	}
	resp, err := rt.next.RoundTrip(req)
	if err != nil || req.URL.Host != rt.host {
		return resp, err
	}
	a := answer{at: time.Now(), path: req.URL.Path, status: resp.StatusCode}
	if resp.StatusCode >= 500 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		a.body = string(b)
	}
	rt.log.add(a)
	return resp, nil
}

// started returns how many requests for path this target has sent.
func (tg *target) started(path string) int {
	rt := tg.http.Transport.(*recordingTransport)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.started[path]
}

// tokens is a token endpoint answer.
type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// httpError is a non-success answer.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("status %d: %.200s", e.status, e.body) }

// statusOf returns the HTTP status of an error from the helpers below, 0 for a
// transport error.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.status
	}
	return 0
}

// login runs the browser part of an authorization: authorize, the upstream's redirect,
// the callback, up to the redirect to the client. It returns the code and verifier.
func (tg *target) login(ctx context.Context) (code, verifier string, err error) {
	jar, _ := cookiejar.New(nil)
	c := *tg.http
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "127.0.0.1:9" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	verifier = rand.Text() + rand.Text() // 52 characters of base32: RFC 7636 §4.1
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectUsed}, "response_type": {"code"}, "state": {"s"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tg.issuer+"/oauth/authorize?"+q.Encode(), nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
		return "", "", &httpError{status: resp.StatusCode, body: fmt.Sprintf("%s %v", body, loc)}
	}
	return loc.Query().Get("code"), verifier, nil
}

// token posts a token request for the public client.
func (tg *target) token(ctx context.Context, form url.Values) (*tokens, error) {
	form.Set("client_id", clientID)
	var tok tokens
	if err := tg.postForm(ctx, "/oauth/token", form, "", "", &tok); err != nil {
		return nil, err
	}
	return &tok, nil
}

func (tg *target) exchange(ctx context.Context, code, verifier string) (*tokens, error) {
	return tg.token(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectUsed}, "code_verifier": {verifier}})
}

func (tg *target) refresh(ctx context.Context, rt string) (*tokens, error) {
	return tg.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// active introspects tok as the resource server.
func (tg *target) active(ctx context.Context, tok string) (bool, error) {
	var out struct {
		Active bool `json:"active"`
	}
	err := tg.postForm(ctx, "/oauth/introspect", url.Values{"token": {tok}}, rsID, rsSecret, &out)
	return out.Active, err
}

func (tg *target) postForm(ctx context.Context, path string, form url.Values, user, pass string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tg.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := tg.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return &httpError{status: resp.StatusCode, body: string(body)}
	}
	return json.Unmarshal(body, out)
}

// get returns the status of a GET (0 on a transport error).
func (tg *target) get(ctx context.Context, path string) int {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tg.issuer+path, nil)
	resp, err := tg.http.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ledger is what the load's clients received: every access token, and for each grant
// whose every request succeeded, its current refresh token. A grant whose request
// failed is dropped: the client cannot know whether the failed refresh rotated it.
type ledger struct {
	mu       sync.Mutex
	access   []string
	current  map[int]string
	nextID   int
	logins   atomic.Int64 // logins that ended with tokens
	failures atomic.Int64 // flows that stopped on an error
}

func newLedger() *ledger { return &ledger{current: map[int]string{}} }

func (l *ledger) got(grant int, tok *tokens) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.access = append(l.access, tok.AccessToken)
	l.current[grant] = tok.RefreshToken
}

func (l *ledger) drop(grant int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.current, grant)
}

func (l *ledger) newGrant() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextID++
	return l.nextID
}

// snapshot returns copies of the access tokens and current refresh tokens.
func (l *ledger) snapshot() ([]string, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var rts []string
	for _, rt := range l.current {
		rts = append(rts, rt)
	}
	return append([]string(nil), l.access...), rts
}

// load runs workers clients until ctx ends: each logs in, redeems its code, refreshes
// twice and introspects, again and again. It returns when every worker has stopped.
func (tg *target) load(ctx context.Context, workers int, l *ledger) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				if !tg.flow(ctx, l) {
					l.failures.Add(1)
					select { // do not spin on a dead server
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
}

// flow is one client's login and use of its tokens; false when a step failed.
func (tg *target) flow(ctx context.Context, l *ledger) bool {
	code, verifier, err := tg.login(ctx)
	if err != nil {
		return false
	}
	grant := l.newGrant()
	tok, err := tg.exchange(ctx, code, verifier)
	if err != nil {
		return false
	}
	l.got(grant, tok)
	for range 2 {
		next, err := tg.refresh(ctx, tok.RefreshToken)
		if err != nil {
			l.drop(grant)
			return false
		}
		l.got(grant, next)
		tok = next
	}
	if _, err := tg.active(ctx, tok.AccessToken); err != nil {
		return false
	}
	l.logins.Add(1)
	return true
}

// checkNothingLost asserts that every access token a client received is still active,
// and every grant's current refresh token still refreshes.
func (tg *target) checkNothingLost(t *testing.T, l *ledger) {
	t.Helper()
	ctx := t.Context()
	access, refresh := l.snapshot()
	if len(access) == 0 {
		t.Fatal("the load received no token")
	}
	lost := 0
	for _, at := range access {
		if ok, err := tg.active(ctx, at); err != nil || !ok {
			lost++
		}
	}
	for _, rt := range refresh {
		if _, err := tg.refresh(ctx, rt); err != nil {
			lost++
			t.Logf("refresh token lost: %v", err)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d tokens the clients received no longer work", lost, len(access)+len(refresh))
	}
	t.Logf("checked %d access tokens and %d refresh tokens", len(access), len(refresh))
}

// checkNo5xxBut503 asserts that every 5xx answer is a 503 temporarily_unavailable (an
// error page for the browser endpoints).
func checkNo5xxBut503(t *testing.T, answers []answer) (unavailable int) {
	t.Helper()
	for _, a := range answers {
		switch {
		case a.status < 500:
		case a.status == http.StatusServiceUnavailable:
			unavailable++
			if strings.HasPrefix(a.body, "{") && !strings.Contains(a.body, `"temporarily_unavailable"`) {
				t.Errorf("%s: 503 with %s", a.path, a.body)
			}
		default:
			t.Errorf("%s: %d %.300s", a.path, a.status, a.body)
		}
	}
	return unavailable
}

// eventually polls f every 25 ms until it is true or d passes, and returns how long it
// took.
func eventually(t *testing.T, d time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(start)
}

package upstream_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

// callback is our redirect URL in every test; nothing listens there.
const callback = "http://127.0.0.1:9/oauth/callback"

func newProvider(t *testing.T, c upstream.Config) upstream.Provider {
	t.Helper()
	p, err := upstream.New(context.Background(), c)
	if err != nil {
		t.Fatalf("New(%s): %v", c.Type, err)
	}
	return p
}

// login runs one whole upstream login against srv and returns what Exchange did.
func login(t *testing.T, srv *upstreamtest.Server, p upstream.Provider) (*upstream.Token, *upstream.Identity, error) {
	t.Helper()
	ap := upstream.NewAuthParams()
	cb := srv.Authorize(t, p.AuthCodeURL("state-1", ap))
	code := cb.Query().Get("code")
	if code == "" {
		t.Fatalf("authorize redirected to %s, without a code", cb)
	}
	return p.Exchange(context.Background(), code, ap)
}

// mustLogin is login that must succeed.
func mustLogin(t *testing.T, srv *upstreamtest.Server, p upstream.Provider) (*upstream.Token, *upstream.Identity) {
	t.Helper()
	tok, id, err := login(t, srv, p)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return tok, id
}

// query returns the query of an authorization URL.
func query(t *testing.T, authURL string) url.Values {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// wantIs fails unless err wraps target.
func wantIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %q", err, target)
	}
}

// wantCode fails unless err carries an OAuth error response with the given code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != code {
		t.Fatalf("error = %v, want an upstream %q error", err, code)
	}
}

// recordingTransport answers nothing and remembers which URLs were asked for: it
// proves which default endpoint a preset uses without a network.
type recordingTransport struct {
	mu   sync.Mutex
	urls []string
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.urls = append(rt.urls, r.URL.String())
	return nil, errors.New("no network in tests")
}

func (rt *recordingTransport) requested() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]string(nil), rt.urls...)
}

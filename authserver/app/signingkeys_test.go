package app

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
	"github.com/mcpauth/mcpauth/internal/testutil/jwtcheck"
	"github.com/mcpauth/mcpauth/internal/testutil/signingkeys"
)

// signingKey makes an ES256 key of the signing keys file.
func signingKey(t *testing.T, kid string, activate, publishUntil time.Time) config.SigningKey {
	t.Helper()
	k, err := signingkeys.Generate(kid, config.SigningES256, activate, publishUntil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeSigningKeys(t *testing.T, path string, keys ...config.SigningKey) {
	t.Helper()
	if err := signingkeys.WriteFile(path, keys...); err != nil {
		t.Fatal(err)
	}
}

func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// jwks fetches the app's JWKS.
func jwks(t *testing.T, base string) map[string]any {
	t.Helper()
	code, body := get(t, base+config.PathJWKS)
	if code != http.StatusOK {
		t.Fatalf("JWKS: %d %s", code, body)
	}
	keys, err := jwtcheck.ParseJWKS([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for kid, k := range keys {
		out[kid] = k
	}
	return out
}

// verify checks tok against the app's JWKS as of at, with jwtcheck.
func verify(t *testing.T, base, tok string, at time.Time) error {
	t.Helper()
	_, body := get(t, base+config.PathJWKS)
	keys, err := jwtcheck.ParseJWKS([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	_, err = jwtcheck.Verify(keys, tok, at)
	return err
}

// loginClient is the trusted public client the key tests log in with.
const loginClient = `clients:
- clientID: app
  redirectURIs: ["http://127.0.0.1:9/cb"]
  tokenEndpointAuthMethod: none
  trusted: true
`

// login runs a whole login for the client "app" and returns its access token.
func login(t *testing.T, base string, idp *upstreamtest.Server) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	follow := func(u string) *url.URL {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("GET %s: %s, no redirect", u, resp.Status)
		}
		return loc
	}
	up := follow(base + config.PathAuthorize + "?" + q.Encode())
	// The issuer names port 8080; the app listens on another.
	cb := idp.Authorize(t, up.String())
	back := follow(base + cb.Path + "?" + cb.RawQuery)
	code := back.Query().Get("code")
	if code == "" {
		t.Fatalf("login ended at %s", back)
	}
	resp, err := http.PostForm(base+config.PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"http://127.0.0.1:9/cb"}, "code_verifier": {verifier}, "client_id": {"app"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	var header struct {
		Kid string `json:"kid"`
	}
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil || json.Unmarshal(raw, &header) != nil {
		t.Fatalf("token header %q: %v", h, err)
	}
	return header.Kid
}

// TestARotatedSigningKeysFileIsPickedUpWithoutARestart rotates keys by rewriting the
// file: tokens signed before and after both verify with an independent library while
// both keys are published; once the old key's publishUntil passes its tokens fail,
// and a broken rewrite keeps the keys in use.
func TestARotatedSigningKeysFileIsPickedUpWithoutARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing-keys.json")
	now := time.Now()
	old := signingKey(t, "old", now.Add(-time.Hour), time.Time{})
	writeSigningKeys(t, path, old)
	base, idp := startWithIdP(t, loginClient+"secrets: {signingKeysFile: "+path+"}\n", nil)

	before := login(t, base, idp)
	if kid := kidOf(t, before); kid != "old" {
		t.Fatalf("first token has kid %q", kid)
	}
	next := signingKey(t, "new", time.Now(), time.Time{})
	old.PublishUntil = time.Now().Add(time.Hour)
	writeSigningKeys(t, path, old, next)
	waitFor(t, "the new key is published", func() bool { return jwks(t, base)["new"] != nil })

	after := login(t, base, idp)
	if kid := kidOf(t, after); kid != "new" {
		t.Fatalf("the token after the rotation has kid %q, want new", kid)
	}
	for name, tok := range map[string]string{"before": before, "after": after} {
		if err := verify(t, base, tok, time.Now()); err != nil {
			t.Errorf("the token from %s the rotation fails: %v", name, err)
		}
	}

	writeAtomically(t, path, []byte(`{"keys":[{"kid":"broken"}]}`))
	time.Sleep(200 * time.Millisecond) // several polls
	if keys := jwks(t, base); keys["new"] == nil || keys["old"] == nil {
		t.Fatalf("a broken keys file changed the keys: %v", keys)
	}

	old.PublishUntil = time.Now().Add(-time.Second) // retired
	writeSigningKeys(t, path, old, next)
	waitFor(t, "the old key is retired", func() bool { return jwks(t, base)["old"] == nil })
	if err := verify(t, base, before, time.Now()); err == nil {
		t.Error("a retired key's token still verifies")
	}
	if err := verify(t, base, after, time.Now()); err != nil {
		t.Errorf("the new key's token fails: %v", err)
	}
	if code, _ := get(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d with an active key", code)
	}
}

func TestABadSigningKeysFileStopsTheServerAtStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing-keys.json")
	writeAtomically(t, path, []byte(`{"keys":[{"kid":"k","alg":"ES256","privateKey":"nope","activateAt":"2026-01-01T00:00:00Z"}]}`))
	cfg := config.Default()
	cfg.Issuer = "http://127.0.0.1:8080"
	idp := upstreamtest.NewServer(t, upstreamtest.Options{})
	cfg.Upstream = config.Upstream{Type: config.UpstreamOIDC, ClientID: "c", IssuerURL: idp.Issuer}
	cfg.Secrets.SigningKeysFile = path
	getenv := func(k string) string {
		if k == config.EnvUpstreamClientSecret {
			return "s"
		}
		return ""
	}
	_, err := New(t.Context(), cfg, Options{Getenv: getenv, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "signingKeysFile") || !strings.Contains(err.Error(), `key "k"`) {
		t.Fatalf("New: %v, want an error naming the file and the key", err)
	}
}

func TestWithoutAnActiveKeyReadyzSaysWhy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing-keys.json")
	writeSigningKeys(t, path, signingKey(t, "later", time.Now().Add(time.Hour), time.Time{}))
	base := start(t, "secrets: {signingKeysFile: "+path+"}\n", nil)
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "signing keys") {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	if jwks(t, base)["later"] == nil {
		t.Error("a key that activates later is not published ahead")
	}
}

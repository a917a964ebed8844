package authserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/memory"
)

// chromiumPath finds a Chromium binary. Without one the test is skipped with the
// command that installs it, except under CI, where a missing browser must fail rather
// than let the consent page go untested.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found on PATH: install it (apt-get install chromium) to drive the consent page"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// newChromium starts a headless Chromium with a fresh profile. The auth server serves
// https with a test certificate, which the browser is told to accept: the __Host-
// cookies need a secure origin.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(),
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.IgnoreCertErrors,
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// clientApp is the MCP client's loopback redirect endpoint: it hands every query it
// receives to the test.
type clientApp struct {
	srv  *httptest.Server
	back chan url.Values
}

func newClientApp(t *testing.T) *clientApp {
	t.Helper()
	c := &clientApp{back: make(chan url.Values, 4)}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" { // the browser also asks for /favicon.ico
			http.NotFound(w, r)
			return
		}
		c.back <- r.URL.Query()
		_, _ = w.Write([]byte("<!doctype html><title>done</title><p id=done>You can close this window.</p>"))
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// wait returns the next redirect the client received.
func (c *clientApp) wait(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-c.back:
		return q
	case <-time.After(30 * time.Second):
		t.Fatal("the browser never reached the client's redirect URI")
		return nil
	}
}

func TestConsentPageInChromium(t *testing.T) {
	ctx := newChromium(t)
	mem := memory.New(memory.Options{Prefix: "chromium"})
	t.Cleanup(func() { _ = mem.Close() })
	fe := newFlowEnv(t, []store.Store{mem}, true)
	app := newClientApp(t)
	reg := fe.registerClient(t, fe.discover(t))
	redirect := app.srv.URL + "/callback" // a loopback URI on the app's port
	p := newPKCE()
	authURL := func(state string) string {
		q := url.Values{"client_id": {reg.ClientID}, "redirect_uri": {redirect}, "response_type": {"code"},
			"state": {state}, "code_challenge": {p.challenge}, "code_challenge_method": {"S256"}, "scope": {"read"}}
		return fe.issuer + pathAuthorize + "?" + q.Encode()
	}

	t.Run("the page names the client and Deny returns access_denied", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(authURL("deny-state")), chromedp.WaitVisible(chromedp.ID("deny"))); err != nil {
			t.Fatal(err)
		}
		name, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("client-name")))
		if err != nil {
			t.Fatal(err)
		}
		host, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("redirect-host")))
		if err != nil {
			t.Fatal(err)
		}
		// Wait for the client's page, so the next navigation does not abort this one.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("deny")), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
			t.Fatal(err)
		}
		if name != "Flow Client" || !strings.HasPrefix(host, "127.0.0.1:") {
			t.Errorf("page shows client %q, redirect host %q", name, host)
		}
		q := app.wait(t)
		if q.Get("error") != "access_denied" || q.Get("state") != "deny-state" || q.Get("iss") != fe.issuer || q.Has("code") {
			t.Errorf("client got %v", q)
		}
	})

	t.Run("Approve continues through the upstream and ends at the client with a code", func(t *testing.T) {
		err := chromedp.Do(ctx,
			chromedp.Navigate(authURL("approve-state")),
			chromedp.WaitVisible(chromedp.ID("approve")),
			chromedp.Click(chromedp.ID("approve")),
			chromedp.WaitVisible(chromedp.ID("done")),
		)
		if err != nil {
			t.Fatal(err)
		}
		q := app.wait(t)
		if q.Get("code") == "" || q.Get("state") != "approve-state" || q.Get("iss") != fe.issuer {
			t.Fatalf("client got %v", q)
		}
		tok := fe.redeem(t, reg.ClientID, redirect, q.Get("code"), p)
		if !fe.introspect(t, fe.discover(t), tok).Active {
			t.Error("the code from the browser flow gave an inactive token")
		}
	})

	t.Run("a remembered approval skips the page", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(authURL("again")), chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
			t.Fatal(err)
		}
		if q := app.wait(t); q.Get("code") == "" || q.Get("state") != "again" {
			t.Fatalf("client got %v", q)
		}
	})
}

// redeem exchanges a code at the token endpoint for a public client.
func (fe *flowEnv) redeem(t *testing.T, clientID, redirectURI, code string, p pkce) string {
	t.Helper()
	resp, err := fe.httpClient().PostForm(fe.issuer+pathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"code_verifier": {p.verifier}, "client_id": {clientID},
	})
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	var tok tokens
	decodeJSON(t, strings.NewReader(body), &tok)
	return tok.AccessToken
}

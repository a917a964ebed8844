package authserver

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestPanicsBecome500ServerErrorWithoutAStackTrace(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	e.store.panicOn.Store("PeekCode")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {mintToken(prefixCode, newGrantID())}, "client_id": {publicClient.ID}}
	rec := e.postForm(pathToken, form)
	wantOAuthError(t, rec, http.StatusInternalServerError, "server_error")
	if body := rec.Body.String(); strings.Contains(body, "goroutine") || strings.Contains(body, "injected") {
		t.Errorf("body leaks the panic: %s", body)
	}
	if !strings.Contains(logs.String(), "injected panic in PeekCode") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("panic not logged with its stack:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "route=token") {
		t.Errorf("panic not logged with its route:\n%s", logs.String())
	}
	if !strings.Contains(scrape(t, e), `mcpauth_http_requests_total{code="500",endpoint="token"} 1`) {
		t.Error("the panic was not counted as a 500")
	}
}

func TestProbes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		path   string
		down   bool
		status int
		body   string
	}{
		{"healthz while the store is up", "/healthz", false, 200, "ok"},
		{"readyz while the store is up", "/readyz", false, 200, "ok"},
		{"healthz stays up while the store is down", "/healthz", true, 200, "ok"},
		{"readyz reports the store outage", "/readyz", true, 503, "not ready: store:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.store.down.Store(tt.down)
			rec := e.get(tt.path)
			if rec.Code != tt.status || !strings.HasPrefix(rec.Body.String(), tt.body) {
				t.Errorf("%d %q", rec.Code, rec.Body.String())
			}
		})
	}
}

func scrape(t *testing.T, e *env) string {
	t.Helper()
	rec := e.get("/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetricsCountRequestsTokensAndStoreErrors(t *testing.T) {
	e := newEnv(t)
	tok := e.issue()
	e.postForm(pathToken, refreshForm(tok.RefreshToken))
	e.store.failOn.Store("GetAccessToken")
	e.postForm(pathIntrospect, url.Values{"token": {tok.AccessToken}}, resourceServer.ID, resourceServer.Secret)
	m := scrape(t, e)
	for _, want := range []string{
		`mcpauth_http_requests_total{code="200",endpoint="token"} 2`,
		`mcpauth_http_requests_total{code="302",endpoint="authorize"} 1`,
		`mcpauth_http_requests_total{code="302",endpoint="callback"} 1`,
		`mcpauth_http_requests_total{code="503",endpoint="introspect"} 1`,
		`mcpauth_tokens_issued_total{grant_type="authorization_code"} 1`,
		`mcpauth_tokens_issued_total{grant_type="refresh_token"} 1`,
		`mcpauth_store_errors_total{operation="get_access_token"} 1`,
		`mcpauth_http_request_duration_seconds_count{endpoint="token"} 2`,
		`go_goroutines`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `operation="peek_code"`) {
		t.Error("a found code counted as a store error")
	}
}

func TestTwoServersCanShareOneRegistererOnlyOnce(t *testing.T) {
	e := newEnv(t)
	opts := e.srv.opts
	if _, err := New(opts); err == nil {
		t.Fatal("a second server registered the same metrics on one registry")
	}
}

func TestEveryResponseCarriesSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{wellKnownAS, pathToken, pathAuthorize, "/healthz", "/nope"} {
		rec := e.get(path)
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, rec.Header())
		}
	}
}

func TestLogsNeverContainSecrets(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	r := e.register(`{"redirect_uris":["https://app.example.com/cb"]}`)
	p := newPKCE()
	b := e.browser()
	back := b.login(t, authzQuery(r.ClientID, webRedirect, p))
	code := back.Query().Get("code")
	tok := e.exchange(r.ClientID, webRedirect, code, p, r.ClientID, r.ClientSecret)
	e.postForm(pathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}, "code_verifier": {p.verifier}}, r.ClientID, r.ClientSecret)
	e.introspect(tok.AccessToken)
	if logs.Len() == 0 {
		t.Fatal("nothing logged at debug level")
	}
	for _, secret := range []string{r.ClientSecret, code, tok.AccessToken, p.verifier, "upstream-access-1", "upstream-refresh-1"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

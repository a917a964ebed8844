package authserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Upstream refresh, once: many requests that find the same user's upstream token
// expiring, on two replicas sharing Redis, cause one refresh at the upstream (a real
// fake IdP over HTTP, upstreamtest, which counts its token requests).

// tryIntrospect is flowEnv.introspect for goroutines: it returns its failure.
func (fe *flowEnv) tryIntrospect(m Metadata, tok string) (IntrospectionResponse, error) {
	var out IntrospectionResponse
	req, err := http.NewRequest(http.MethodPost, m.IntrospectionEndpoint, strings.NewReader(url.Values{"token": {tok}}.Encode()))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(resourceServer.ID, resourceServer.Secret)
	resp, err := fe.httpClient().Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return out, fmt.Errorf("introspect: %d %s", resp.StatusCode, b)
	}
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// introspectConcurrently sends n introspections of tok at once and returns their
// answers, failing the test on any error.
func (fe *flowEnv) introspectConcurrently(t *testing.T, m Metadata, tok string, n int) []IntrospectionResponse {
	t.Helper()
	out, errs := make([]IntrospectionResponse, n), make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i], errs[i] = fe.tryIntrospect(m, tok)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("introspection %d of %d: %v", i+1, n, err)
		}
	}
	return out
}

// scrapeAll returns the metrics of every server, one after the other.
func (fe *flowEnv) scrapeAll(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, srv := range fe.servers {
		rec := httptest.NewRecorder()
		srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		b.WriteString(rec.Body.String())
	}
	return b.String()
}

func TestConcurrentIntrospectionsRefreshTheUpstreamTokenOnceAcrossTwoServersSharingRedis(t *testing.T) {
	stores, _ := startRedisStores(t, 2)
	fe := newFlowEnv(t, stores, false) // the IdP's tokens live 10 s: inside the refresh skew
	_, meta, tok := loginPublic(t, fe)
	fe.idp.SetAccessTokenTTL(time.Hour)
	// Hold the refresh in flight so that every introspection finds the token stale.
	fe.idp.SetTokenDelay(300 * time.Millisecond)
	before, served := fe.idp.Refreshes(), []int64{fe.served[0].Load(), fe.served[1].Load()}

	const n = 20
	answers := fe.introspectConcurrently(t, meta, tok.AccessToken, n)
	if got := fe.idp.Refreshes() - before; got != 1 {
		t.Errorf("the upstream saw %d refreshes for %d concurrent introspections, want exactly 1", got, n)
	}
	renewed := answers[0].UpstreamAccessToken
	for i, a := range answers {
		if !a.Active || a.UpstreamAccessToken != renewed {
			t.Errorf("introspection %d: active %v, upstream token %.8q; want active with the one renewed token %.8q", i+1, a.Active, a.UpstreamAccessToken, renewed)
		}
	}
	if !fe.idp.ValidAccessToken(renewed) {
		t.Errorf("the upstream token %.8q is not valid at the upstream", renewed)
	}
	if exp := time.Unix(answers[0].UpstreamTokenExpiresAt, 0); time.Until(exp) < 50*time.Minute {
		t.Errorf("the upstream token expires at %s: not the renewed one-hour token", exp)
	}
	if fe.served[0].Load() == served[0] || fe.served[1].Load() == served[1] {
		t.Error("the introspections did not reach both servers")
	}
	if m := fe.scrapeAll(t); !strings.Contains(m, `mcpauth_upstream_refreshes_total{outcome="ok"} 1`) {
		t.Errorf("refreshes counted:\n%s", grepLines(m, "upstream_refreshes"))
	}
}

func TestConcurrentIntrospectionsDuringAnUpstreamOutageRefreshOnceAndRevokeNothing(t *testing.T) {
	stores, _ := startRedisStores(t, 2)
	fe := newFlowEnv(t, stores, false)
	clientID, meta, tok := loginPublic(t, fe)
	fe.idp.FailTokenRequests(http.StatusServiceUnavailable)
	// Long enough that all 20 requests arrive while the one refresh is in flight: a
	// caller arriving after it ended would try once more, which is fine but not what
	// this test counts.
	fe.idp.SetTokenDelay(time.Second)
	before := fe.idp.Refreshes()

	answers := fe.introspectConcurrently(t, meta, tok.AccessToken, 20)
	if got := fe.idp.Refreshes() - before; got != 1 {
		t.Errorf("the upstream saw %d refreshes, want exactly 1: waiters must not retry a failed refresh in turn", got)
	}
	for i, a := range answers {
		if !a.Active || a.UpstreamAccessToken != "" {
			t.Errorf("introspection %d: %+v; want active, without an upstream token", i+1, a)
		}
	}

	// The outage ends: nothing was revoked, and the next request refreshes.
	fe.idp.FailTokenRequests(0)
	fe.idp.SetTokenDelay(0)
	if a := fe.introspect(t, meta, tok.AccessToken); !a.Active || !fe.idp.ValidAccessToken(a.UpstreamAccessToken) {
		t.Errorf("introspection after the outage: %+v", a)
	}
	resp, err := fe.httpClient().PostForm(meta.TokenEndpoint,
		url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Errorf("the client's refresh after the outage: %d %s", resp.StatusCode, body)
	}
	m := fe.scrapeAll(t)
	if !strings.Contains(m, `mcpauth_upstream_refreshes_total{outcome="failed"} 1`) || strings.Contains(m, "mcpauth_upstream_relogin_required_total 1") {
		t.Errorf("metrics after the outage:\n%s", grepLines(m, "upstream"))
	}
}

func TestAnUpstreamRefreshRevokedUpstreamEndsTheGrant(t *testing.T) {
	stores, raw := startRedisStores(t, 2)
	fe := newFlowEnv(t, stores, false)
	clientID, meta, tok := loginPublic(t, fe)
	fe.idp.RevokeRefreshTokens() // the user removed the app at the upstream

	if a := fe.introspect(t, meta, tok.AccessToken); a.Active {
		t.Fatalf("introspection %+v; the MCP server must see the token inactive (invalid_token)", a)
	}
	resp, err := fe.httpClient().PostForm(meta.TokenEndpoint,
		url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"invalid_grant"`) {
		t.Errorf("the client's refresh: %d %s; want invalid_grant, so it logs in again", resp.StatusCode, body)
	}
	if m := fe.scrapeAll(t); !strings.Contains(m, "mcpauth_upstream_relogin_required_total 1") {
		t.Errorf("the revoked grant was not counted:\n%s", grepLines(m, "upstream"))
	}
	if keys, err := raw.Keys(t.Context(), "flowtest:{g:*}:revoked").Result(); err != nil || len(keys) != 1 {
		t.Errorf("revocation markers %v, %v; want the one grant's", keys, err)
	}

	// Logging in again works, with a fresh upstream token.
	_, meta, tok = loginPublic(t, fe)
	fe.idp.SetAccessTokenTTL(time.Hour)
	if a := fe.introspect(t, meta, tok.AccessToken); !a.Active || !fe.idp.ValidAccessToken(a.UpstreamAccessToken) {
		t.Errorf("introspection after a new login: %+v", a)
	}
}

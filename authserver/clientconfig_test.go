package authserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
	redisstore "github.com/mcpauth/mcpauth/authserver/store/redis"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// managed is a registration with its RFC 7592 credentials.
type managed struct {
	registration
	RegistrationAccessToken string `json:"registration_access_token"`
	RegistrationClientURI   string `json:"registration_client_uri"`
}

func (e *env) registerManaged(body string) managed {
	e.t.Helper()
	rec := e.postJSON(pathRegister, body)
	if rec.Code != http.StatusCreated {
		e.t.Fatalf("register: %d %s", rec.Code, rec.Body.String())
	}
	var m managed
	decodeJSON(e.t, rec.Body, &m)
	return m
}

// config sends an RFC 7592 request to uri with the given Authorization header value.
func (e *env) config(method, uri, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, uri, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return e.serve(req)
}

func bearer(tok string) string { return "Bearer " + tok }

func TestRegistrationCarriesItsConfigurationEndpointAndToken(t *testing.T) {
	e := newEnv(t)
	m := e.registerManaged(`{"redirect_uris":["https://app.example.com/cb"],"client_name":"App"}`)
	if m.RegistrationClientURI != testIssuer+pathRegister+"/"+m.ClientID {
		t.Errorf("registration_client_uri %q", m.RegistrationClientURI)
	}
	if owner, ok := parseRegistrationToken(m.RegistrationAccessToken); !ok || owner != m.ClientID {
		t.Errorf("registration_access_token %q names %q", m.RegistrationAccessToken, owner)
	}
	if strings.Contains(e.store.recorded(), m.RegistrationAccessToken) {
		t.Error("the registration access token reached the store in clear")
	}
}

func TestClientConfigurationReadUpdateDelete(t *testing.T) {
	e := newEnv(t)
	m := e.registerManaged(`{"redirect_uris":["https://app.example.com/cb"],"client_name":"App",
		"grant_types":["authorization_code","refresh_token"]}`)
	auth := bearer(m.RegistrationAccessToken)

	// Read: the registered metadata, the URI and the token; never the secret.
	rec := e.config(http.MethodGet, m.RegistrationClientURI, auth, "")
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("read: %d %v %s", rec.Code, rec.Header(), rec.Body.String())
	}
	var read managed
	decodeJSON(t, rec.Body, &read)
	if read.ClientID != m.ClientID || read.ClientName != "App" || read.ClientSecret != "" ||
		read.RegistrationAccessToken != m.RegistrationAccessToken || read.RegistrationClientURI != m.RegistrationClientURI ||
		read.ClientSecretExpiresAt == nil || *read.ClientSecretExpiresAt != *m.ClientSecretExpiresAt {
		t.Errorf("read %+v, registered %+v", read, m)
	}

	// A login before the update, whose tokens the deletion must revoke.
	p := newPKCE()
	code := e.code(m.ClientID, webRedirect, p, nil)
	tok := e.exchange(m.ClientID, webRedirect, code, p, m.ClientID, m.ClientSecret)

	// Update: a full replacement. The omitted client_name is gone; the secret and the
	// registration access token are kept.
	rec = e.config(http.MethodPut, m.RegistrationClientURI, auth, `{"client_id":"`+m.ClientID+`",
		"redirect_uris":["https://new.example.com/cb"],"grant_types":["authorization_code","refresh_token"],
		"token_endpoint_auth_method":"client_secret_basic","client_secret":"`+m.ClientSecret+`"}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("update: %d %s", rec.Code, rec.Body.String())
	}
	var updated managed
	decodeJSON(t, rec.Body, &updated)
	if strings.Join(updated.RedirectURIs, ",") != "https://new.example.com/cb" || updated.ClientName != "" ||
		updated.ClientSecret != "" || updated.RegistrationAccessToken != m.RegistrationAccessToken || updated.ClientIDIssuedAt != m.ClientIDIssuedAt {
		t.Errorf("updated %+v", updated)
	}
	// The old redirect URI is refused now; the new one works, with the same secret.
	if rec := e.get(pathAuthorize + "?" + authzQuery(m.ClientID, webRedirect, newPKCE()).Encode()); rec.Code != http.StatusBadRequest {
		t.Errorf("authorize with the replaced redirect URI: %d", rec.Code)
	}
	p = newPKCE()
	code = e.code(m.ClientID, "https://new.example.com/cb", p, nil)
	e.exchange(m.ClientID, "https://new.example.com/cb", code, p, m.ClientID, m.ClientSecret)

	// Delete: 204, the registration and every token it had are gone, and the token no
	// longer opens anything.
	rec = e.config(http.MethodDelete, m.RegistrationClientURI, auth, "")
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body.String())
	}
	if active, _ := e.introspect(tok.AccessToken)["active"].(bool); active {
		t.Error("an access token of the deleted client is still active")
	}
	refresh := e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, m.ClientID, m.ClientSecret)
	wantOAuthError(t, refresh, http.StatusUnauthorized, "invalid_client")
	wantOAuthError(t, e.config(http.MethodGet, m.RegistrationClientURI, auth, ""), http.StatusUnauthorized, "invalid_token")
	wantOAuthError(t, e.config(http.MethodDelete, m.RegistrationClientURI, auth, ""), http.StatusUnauthorized, "invalid_token")
}

func TestClientConfigurationRefusesBadTokens(t *testing.T) {
	e := newEnv(t)
	m := e.registerManaged(`{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`)
	other := e.registerManaged(`{"redirect_uris":["https://other.example.com/cb"],"token_endpoint_auth_method":"none"}`)
	forged := m.RegistrationAccessToken[:len(m.RegistrationAccessToken)-4] + "AAAA"
	if forged == m.RegistrationAccessToken {
		forged = m.RegistrationAccessToken[:len(m.RegistrationAccessToken)-4] + "BBBB"
	}
	tests := []struct {
		name, uri, auth string
		status          int
		code            string
		challenge       string
	}{
		{"no token", m.RegistrationClientURI, "", 401, "invalid_token", `Bearer realm="mcpauth"`},
		{"another scheme", m.RegistrationClientURI, "Basic " + m.RegistrationAccessToken, 401, "invalid_token", `Bearer realm="mcpauth"`},
		{"not a registration access token", m.RegistrationClientURI, bearer("mcp_at_0123"), 401, "invalid_token", `error="invalid_token"`},
		{"the right client but the wrong secret part", m.RegistrationClientURI, bearer(forged), 401, "invalid_token", `error="invalid_token"`},
		{"another client's valid token", m.RegistrationClientURI, bearer(other.RegistrationAccessToken), 403, "insufficient_scope", `error="insufficient_scope"`},
		{"a valid token at a pre-registered client's URI", testIssuer + pathRegister + "/" + trustedClient.ID, bearer(m.RegistrationAccessToken), 403, "insufficient_scope", `error="insufficient_scope"`},
		{"a valid token at the bare endpoint path", testIssuer + pathRegister + "/", bearer(m.RegistrationAccessToken), 403, "insufficient_scope", `error="insufficient_scope"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
				rec := e.config(method, tc.uri, tc.auth, "")
				wantOAuthError(t, rec, tc.status, tc.code)
				if ch := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, tc.challenge) {
					t.Errorf("%s: WWW-Authenticate %q, want %q", method, ch, tc.challenge)
				}
			}
		})
	}
	// Nothing above deleted or changed the registration.
	if rec := e.config(http.MethodGet, m.RegistrationClientURI, bearer(m.RegistrationAccessToken), ""); rec.Code != http.StatusOK {
		t.Errorf("read after the refusals: %d", rec.Code)
	}
	wantOAuthError(t, e.config(http.MethodPost, m.RegistrationClientURI, bearer(m.RegistrationAccessToken), "{}"), http.StatusMethodNotAllowed, "invalid_request")
}

func TestClientConfigurationUpdateIsValidated(t *testing.T) {
	e := newEnv(t)
	m := e.registerManaged(`{"redirect_uris":["https://app.example.com/cb"],"client_name":"App"}`)
	auth := bearer(m.RegistrationAccessToken)
	put := func(body string) *httptest.ResponseRecorder {
		return e.config(http.MethodPut, m.RegistrationClientURI, auth, body)
	}
	id := `"client_id":"` + m.ClientID + `"`
	tests := []struct {
		name, body, code string
	}{
		{"no client_id", `{"redirect_uris":["https://app.example.com/cb"]}`, "invalid_client_metadata"},
		{"another client_id", `{"client_id":"mcpc_someoneelse","redirect_uris":["https://app.example.com/cb"]}`, "invalid_client_metadata"},
		{"the registration access token in the body", `{` + id + `,"redirect_uris":["https://app.example.com/cb"],"registration_access_token":"x"}`, "invalid_client_metadata"},
		{"client_id_issued_at in the body", `{` + id + `,"redirect_uris":["https://app.example.com/cb"],"client_id_issued_at":1}`, "invalid_client_metadata"},
		{"a secret the client chose", `{` + id + `,"redirect_uris":["https://app.example.com/cb"],"client_secret":"mine"}`, "invalid_client_metadata"},
		{"no redirect URIs", `{` + id + `}`, "invalid_redirect_uri"},
		{"an http redirect URI off loopback", `{` + id + `,"redirect_uris":["http://app.example.com/cb"]}`, "invalid_redirect_uri"},
		{"an unknown grant type", `{` + id + `,"redirect_uris":["https://app.example.com/cb"],"grant_types":["password"]}`, "invalid_client_metadata"},
		{"not JSON", `redirect_uris=x`, "invalid_client_metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantOAuthError(t, put(tc.body), http.StatusBadRequest, tc.code) })
	}
	rec := e.config(http.MethodGet, m.RegistrationClientURI, auth, "")
	var read managed
	decodeJSON(t, rec.Body, &read)
	if read.ClientName != "App" || strings.Join(read.RedirectURIs, ",") != "https://app.example.com/cb" {
		t.Errorf("a refused update changed the registration: %+v", read)
	}

	t.Run("turning public drops the secret, turning confidential again issues a new one", func(t *testing.T) {
		rec := put(`{` + id + `,"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`)
		var pub managed
		decodeJSON(t, rec.Body, &pub)
		if rec.Code != http.StatusOK || pub.ClientSecret != "" || pub.ClientSecretExpiresAt != nil {
			t.Fatalf("to public: %d %+v", rec.Code, pub)
		}
		p := newPKCE()
		e.exchange(m.ClientID, webRedirect, e.code(m.ClientID, webRedirect, p, nil), p)

		rec = put(`{` + id + `,"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"client_secret_post"}`)
		var conf managed
		decodeJSON(t, rec.Body, &conf)
		if rec.Code != http.StatusOK || !strings.HasPrefix(conf.ClientSecret, prefixSecret) || conf.ClientSecret == m.ClientSecret {
			t.Fatalf("to confidential: %d %+v", rec.Code, conf)
		}
		p = newPKCE()
		form := url.Values{"grant_type": {"authorization_code"}, "code": {e.code(m.ClientID, webRedirect, p, nil)},
			"redirect_uri": {webRedirect}, "code_verifier": {p.verifier}, "client_id": {m.ClientID}, "client_secret": {conf.ClientSecret}}
		if rec := e.postForm(pathToken, form); rec.Code != http.StatusOK {
			t.Fatalf("token with the new secret: %d %s", rec.Code, rec.Body.String())
		}
	})
}

func TestClientConfigurationIsAbsentWithoutDynamicRegistration(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.DynamicRegistration = false })
	if rec := e.config(http.MethodGet, testIssuer+pathRegister+"/mcpc_x", bearer("mcp_rat_mcpc_x.y"), ""); rec.Code != http.StatusNotFound {
		t.Errorf("status %d, want 404", rec.Code)
	}
}

// TestIdleRegistrationsAreRemoved: a registration not used to obtain tokens for the
// idle TTL is gone; each use moves its end, without a sweeper.
func TestIdleRegistrationsAreRemoved(t *testing.T) {
	e := newEnv(t, withAdmin, func(o *Options) { o.RegistrationIdleTTL = time.Hour })
	idle := e.registerManaged(`{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`)
	used := e.registerManaged(`{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none",
		"grant_types":["authorization_code","refresh_token"]}`)
	start := e.clock.Now()

	e.clock.Advance(40 * time.Minute)
	p := newPKCE()
	tok := e.exchange(used.ClientID, webRedirect, e.code(used.ClientID, webRedirect, p, nil), p)
	firstUse := e.clock.Now()
	e.clock.Advance(25 * time.Minute) // idle's hour is over; used's runs to 1h40m

	wantOAuthError(t, e.config(http.MethodGet, idle.RegistrationClientURI, bearer(idle.RegistrationAccessToken), ""), http.StatusUnauthorized, "invalid_token")
	if rec := e.get(pathAuthorize + "?" + authzQuery(idle.ClientID, webRedirect, newPKCE()).Encode()); rec.Code != http.StatusBadRequest {
		t.Errorf("authorize for the idle client: %d, want 400", rec.Code)
	}
	list := e.adminClients()
	if len(list) != 1 || list[0].ID != used.ClientID || !list[0].LastUsedAt.Equal(firstUse) ||
		!list[0].ExpiresAt.Equal(firstUse.Add(time.Hour)) || !list[0].CreatedAt.Equal(start) || list[0].Source != "192.0.2.1" {
		t.Fatalf("listed %+v", list)
	}

	// A refresh 25 min after the first use is recorded (touchInterval is 6 min for an
	// idle TTL of 1h) and keeps the client another hour.
	rec := e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {used.ClientID}})
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body.String())
	}
	secondUse := e.clock.Now()
	next := jsonField(t, rec, "refresh_token")
	// A use within touchInterval of the last one writes nothing.
	e.clock.Advance(time.Minute)
	rec = e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}, "client_id": {used.ClientID}})
	if rec.Code != http.StatusOK {
		t.Fatalf("second refresh: %d %s", rec.Code, rec.Body.String())
	}
	if got := e.adminClients()[0].LastUsedAt; !got.Equal(secondUse) {
		t.Errorf("LastUsedAt %s, want %s (a use a minute later is not written)", got, secondUse)
	}
	e.clock.Advance(58 * time.Minute)
	if rec := e.config(http.MethodGet, used.RegistrationClientURI, bearer(used.RegistrationAccessToken), ""); rec.Code != http.StatusOK {
		t.Fatalf("the used client, 59 min after its last recorded use: %d", rec.Code)
	}
	e.clock.Advance(2 * time.Minute)
	wantOAuthError(t, e.config(http.MethodGet, used.RegistrationClientURI, bearer(used.RegistrationAccessToken), ""), http.StatusUnauthorized, "invalid_token")
	if n := len(e.adminClients()); n != 0 {
		t.Errorf("%d clients listed after both went idle", n)
	}
}

func TestIdleRemovalNeverOutlivesTheRegistrationTTL(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RegistrationTTL, o.RegistrationIdleTTL = 2*time.Hour, time.Hour })
	m := e.registerManaged(`{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`)
	for range 3 { // a use every 50 min
		e.clock.Advance(50 * time.Minute)
		p := newPKCE()
		if e.clock.Now().Sub(time.Unix(m.ClientIDIssuedAt, 0)) >= 2*time.Hour {
			break
		}
		e.exchange(m.ClientID, webRedirect, e.code(m.ClientID, webRedirect, p, nil), p)
	}
	// 2h30 after registration: past the registration TTL however recently used.
	wantOAuthError(t, e.config(http.MethodGet, m.RegistrationClientURI, bearer(m.RegistrationAccessToken), ""), http.StatusUnauthorized, "invalid_token")
}

func (e *env) adminClients() []adminapi.Client {
	e.t.Helper()
	rec := e.adminCall(http.MethodGet, adminapi.PathClients, testAdminToken, "")
	if rec.Code != http.StatusOK {
		e.t.Fatalf("list clients: %d %s", rec.Code, rec.Body.String())
	}
	var out adminapi.ClientList
	decodeJSON(e.t, rec.Body, &out)
	return out.Clients
}

// registerFrom registers a public client as if from remote ("ip:port").
func registerFrom(e *env, remote string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, testIssuer+pathRegister,
		strings.NewReader(`{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = remote
	return e.serve(req)
}

func TestRegistrationsPerSourceAreLimited(t *testing.T) {
	e := newEnv(t, withAdmin, func(o *Options) { o.RegistrationMaxPerSource, o.RegistrationIdleTTL = 2, time.Hour })
	first := registerFrom(e, "192.0.2.9:1000")
	if first.Code != http.StatusCreated || registerFrom(e, "192.0.2.9:1001").Code != http.StatusCreated {
		t.Fatal("the first two registrations were refused")
	}
	e.clock.Advance(10 * time.Minute)
	rec := registerFrom(e, "192.0.2.9:1002")
	wantOAuthError(t, rec, http.StatusTooManyRequests, "temporarily_unavailable")
	if ra := rec.Header().Get("Retry-After"); ra != "3000" { // the first goes idle 50 min from now
		t.Errorf("Retry-After %q, want 3000", ra)
	}
	if rec := registerFrom(e, "192.0.2.10:1000"); rec.Code != http.StatusCreated {
		t.Errorf("another address: %d", rec.Code)
	}
	if rec := registerFrom(e, "[2001:db8::1]:1000"); rec.Code != http.StatusCreated {
		t.Errorf("an IPv6 address: %d", rec.Code)
	}
	if rec := registerFrom(e, "[2001:db8::1]:1000"); rec.Code != http.StatusCreated {
		t.Errorf("the same /64 again: %d", rec.Code)
	}
	wantOAuthError(t, registerFrom(e, "[2001:db8::ffff]:1000"), http.StatusTooManyRequests, "temporarily_unavailable")

	// Deleting one (RFC 7592) frees its place at once.
	var m managed
	decodeJSON(t, first.Body, &m)
	if rec := e.config(http.MethodDelete, m.RegistrationClientURI, bearer(m.RegistrationAccessToken), ""); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d", rec.Code)
	}
	if rec := registerFrom(e, "192.0.2.9:1003"); rec.Code != http.StatusCreated {
		t.Errorf("after a deletion: %d %s", rec.Code, rec.Body.String())
	}
	// And idle ones free theirs when they go.
	e.clock.Advance(time.Hour)
	if rec := registerFrom(e, "192.0.2.9:1004"); rec.Code != http.StatusCreated {
		t.Errorf("after the others went idle: %d %s", rec.Code, rec.Body.String())
	}
	var mm dto.Metric
	if err := e.srv.metrics.registrationsRefused.Write(&mm); err != nil || mm.GetCounter().GetValue() != 2 {
		got := mm.GetCounter().GetValue()
		t.Errorf("mcpauth_registrations_refused_total %v, want 2", got)
	}
}

// TestRegistrationsPerSourceAreCountedAcrossReplicas: two servers sharing one Redis
// share the per-source count.
func TestRegistrationsPerSourceAreCountedAcrossReplicas(t *testing.T) {
	srv := redisserver.Start(t)
	replica := func() *env {
		rs, err := redisstore.New(t.Context(), redisstore.Options{Addrs: []string{srv.Addr}, Prefix: "replicas"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rs.Close() })
		return newEnv(t, func(o *Options) { o.Store, o.Now, o.RegistrationMaxPerSource = rs, time.Now, 3 })
	}
	a, b := replica(), replica()
	for i, e := range []*env{a, b, a} {
		if rec := registerFrom(e, "192.0.2.20:1000"); rec.Code != http.StatusCreated {
			t.Fatalf("registration %d: %d %s", i+1, rec.Code, rec.Body.String())
		}
	}
	for name, e := range map[string]*env{"a": a, "b": b} {
		rec := registerFrom(e, "192.0.2.20:1000")
		wantOAuthError(t, rec, http.StatusTooManyRequests, "temporarily_unavailable")
		if ra := rec.Header().Get("Retry-After"); ra == "" {
			t.Errorf("replica %s: no Retry-After", name)
		}
	}
	if rec := registerFrom(b, "192.0.2.21:1000"); rec.Code != http.StatusCreated {
		t.Errorf("another address: %d", rec.Code)
	}
}

func TestRegisteredClientsMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(o *Options) { o.Registerer, o.Gatherer = reg, reg })
	gauge := func() string {
		t.Helper()
		rec := e.get("/metrics")
		body, _ := io.ReadAll(rec.Body)
		var out []string
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "mcpauth_registered_clients{") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "; ")
	}
	const static = `mcpauth_registered_clients{kind="static"} 8`
	if got := gauge(); got != `mcpauth_registered_clients{kind="dynamic"} 0; `+static {
		t.Errorf("before: %q", got)
	}
	e.register(`{"redirect_uris":["https://app.example.com/cb"]}`)
	e.register(`{"redirect_uris":["https://app.example.com/cb"]}`)
	if got := gauge(); got != `mcpauth_registered_clients{kind="dynamic"} 0; `+static {
		t.Errorf("read again before 30s: %q", got)
	}
	e.clock.Advance(clientCountEvery)
	if got := gauge(); got != `mcpauth_registered_clients{kind="dynamic"} 2; `+static {
		t.Errorf("after 30s: %q", got)
	}
	e.store.down.Store(true)
	e.clock.Advance(clientCountEvery)
	if got := gauge(); got != static {
		t.Errorf("with the store down: %q, want the dynamic series left out", got)
	}
}

func TestClientConfigurationRefusesAnAdministratorManagedClient(t *testing.T) {
	e := newEnv(t)
	m := e.registerManaged(`{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`)
	c, err := e.store.GetClient(t.Context(), m.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	c.Trusted = true // only an administrator's tooling writes this
	if err := e.store.UpdateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		wantOAuthError(t, e.config(method, m.RegistrationClientURI, bearer(m.RegistrationAccessToken), ""), http.StatusForbidden, "insufficient_scope")
	}
	if _, err := e.store.GetClient(t.Context(), m.ClientID); err != nil {
		t.Errorf("the refused DELETE removed the client: %v", err)
	}
}

func TestClientConfigurationAnswers503WhenTheStoreIsDown(t *testing.T) {
	e := newEnv(t)
	m := e.registerManaged(`{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`)
	e.store.down.Store(true)
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		rec := e.config(method, m.RegistrationClientURI, bearer(m.RegistrationAccessToken), "")
		wantOAuthError(t, rec, http.StatusServiceUnavailable, "temporarily_unavailable")
	}
	e.store.down.Store(false)
	if rec := e.config(http.MethodGet, m.RegistrationClientURI, bearer(m.RegistrationAccessToken), ""); rec.Code != http.StatusOK {
		t.Errorf("after the store is back: %d", rec.Code)
	}
}

func TestTheTwentyFirstRegistrationFromOneAddressIsRefusedByDefault(t *testing.T) {
	e := newEnv(t)
	for i := range DefaultRegistrationMaxPerSource {
		if rec := registerFrom(e, "198.51.100.7:1000"); rec.Code != http.StatusCreated {
			t.Fatalf("registration %d: %d %s", i+1, rec.Code, rec.Body.String())
		}
	}
	rec := registerFrom(e, "198.51.100.7:1000")
	wantOAuthError(t, rec, http.StatusTooManyRequests, "temporarily_unavailable")
	if ra := rec.Header().Get("Retry-After"); ra != "2592000" { // the first goes idle in 30 days
		t.Errorf("Retry-After %q, want 2592000", ra)
	}
}

// TestAnUpdateOfAnApprovedClientNeedsApprovalAgain: in approval mode an administrator
// approves the name and redirect URIs they saw, so an RFC 7592 update that changes
// them puts the client back on the pending list, showing what it now says; a denial
// is not lifted by an update.
func TestAnUpdateOfAnApprovedClientNeedsApprovalAgain(t *testing.T) {
	e := approvalEnv(t)
	m := e.registerManaged(`{"client_name":"Dyn Tool","redirect_uris":["` + webRedirect + `"],"token_endpoint_auth_method":"none"}`)
	auth := bearer(m.RegistrationAccessToken)
	if res, _ := e.decide(m.ClientID, adminapi.DecisionApprove); res.StatusCode != http.StatusOK {
		t.Fatalf("approve: %d", res.StatusCode)
	}
	update := func(name, uri string) {
		t.Helper()
		rec := e.config(http.MethodPut, m.RegistrationClientURI, auth, `{"client_id":"`+m.ClientID+`","client_name":"`+name+
			`","redirect_uris":["`+uri+`"],"token_endpoint_auth_method":"none"}`)
		if rec.Code != http.StatusOK {
			t.Fatalf("update: %d %s", rec.Code, rec.Body.String())
		}
	}
	// The same name and URIs: still approved.
	update("Dyn Tool", webRedirect)
	if got := e.approvals("approved"); len(got) != 1 || got[0].ClientID != m.ClientID {
		t.Fatalf("approved after an update that changed nothing approved: %+v", got)
	}
	update("Dyn Tool", "https://elsewhere.example.com/cb")
	pending := e.approvals("pending")
	if len(pending) != 1 || pending[0].ClientID != m.ClientID || strings.Join(pending[0].RedirectURIs, ",") != "https://elsewhere.example.com/cb" {
		t.Fatalf("pending after the redirect URI changed: %+v", pending)
	}
	rec := e.browser().get(authorizeURL(authzQuery(m.ClientID, "https://elsewhere.example.com/cb", newPKCE())))
	wantPage(t, rec, http.StatusForbidden, "Waiting for approval")

	if res, _ := e.decide(m.ClientID, adminapi.DecisionDeny); res.StatusCode != http.StatusOK {
		t.Fatalf("deny: %d", res.StatusCode)
	}
	update("Renamed", webRedirect)
	if got := e.approvals("denied"); len(got) != 1 || got[0].ClientID != m.ClientID {
		t.Errorf("an update lifted a denial: %+v", e.approvals(""))
	}
	// Deleting the registration takes its record off the lists.
	if rec := e.config(http.MethodDelete, m.RegistrationClientURI, auth, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body.String())
	}
	if got := e.approvals(""); len(got) != 0 {
		t.Errorf("approvals of a deleted registration: %+v", got)
	}
}

package authserver

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/mcpauth/mcpauth/authserver/config"
	redisstore "github.com/mcpauth/mcpauth/authserver/store/redis"
	"github.com/mcpauth/mcpauth/internal/testutil/redisserver"
)

// redisTrips counts what go-redis sends: each command alone, or each pipeline, is one
// round trip.
type redisTrips struct {
	mu sync.Mutex
	n  int
}

func (c *redisTrips) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *redisTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (c *redisTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (c *redisTrips) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = 0
	return n
}

// TestRedisRoundTripsPerRequest pins what each step of a login costs on the Redis
// store, for a dynamically registered client (the expensive case: its record is in the
// store too). Introspection is one round trip; a token request, whatever its grant,
// two: the client and the code or refresh token read in one pipeline, then the grant's
// script, which carries the record of the client's use when one is due. A rotated
// refresh token presented again inside the reuse window costs the same two: the read,
// then the rotation script that returns the kept successor. A JWT access token costs
// the same as an opaque one: its record is keyed by its jti, so introspection verifies
// the signature and then makes the one read. `make bench` measures the same under
// load (docs/performance.md).
func TestRedisRoundTripsPerRequest(t *testing.T) {
	for _, format := range tokenFormats {
		t.Run(string(format), func(t *testing.T) { testRedisRoundTrips(t, format) })
	}
}

func testRedisRoundTrips(t *testing.T, format config.AccessTokenFormat) {
	srv := redisserver.Start(t)
	ctx := t.Context()
	rs, err := redisstore.New(ctx, redisstore.Options{Addrs: []string{srv.Addr}, Prefix: "trips"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	// Warm the connection (and go-redis's first-pipeline HELLO) outside the count.
	if _, err := rs.Client().Pipelined(ctx, func(p goredis.Pipeliner) error { return p.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	trips := &redisTrips{}
	rs.Client().AddHook(trips)
	// The server's clock runs ahead by skew, so that a later use of the client is due
	// to be recorded without waiting an hour.
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	e := newEnv(t, func(o *Options) {
		o.Store, o.Now, o.RefreshReuseWindow, o.AccessTokenFormat = rs, now, time.Minute, format
	})
	step := func(name string, want int) {
		t.Helper()
		if got := trips.take(); got != want {
			t.Errorf("%s: %d round trips, want %d", name, got, want)
		}
	}

	rec := e.postJSON(pathRegister, `{"redirect_uris":["`+loopbackRedirect+`"],"token_endpoint_auth_method":"none",`+
		`"grant_types":["authorization_code","refresh_token"]}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", rec.Code, rec.Body.String())
	}
	step("register", 1)
	clientID := jsonField(t, rec, "client_id")

	b := e.browser()
	p := newPKCE()
	rec = b.get(authorizeURL(authzQuery(clientID, loopbackRedirect, p)))
	if rec.Code != http.StatusOK {
		t.Fatalf("authorize: %d, want the consent page", rec.Code)
	}
	step("authorize (consent page)", 1)
	form := consentForm(t, rec.Body.String())
	form.Set("decision", "approve")
	rec = b.postForm(testIssuer+pathConsent, form)
	up := location(t, rec)
	step("consent", 2)
	cb := url.Values{"code": {goodUpstreamCode}, "state": {up.Query().Get("state")}}
	rec = b.get(testIssuer + DefaultCallbackPath + "?" + cb.Encode())
	code := location(t, rec).Query().Get("code")
	step("callback", 2)

	tok := e.exchange(clientID, loopbackRedirect, code, p)
	step("token (authorization_code)", 2)
	// That first use of the registration was recorded in the same two.
	if c, err := rs.GetClient(ctx, clientID); err != nil || c.LastUsedAt.IsZero() {
		t.Fatalf("the client's first use was not recorded: %+v %v", c, err)
	}
	trips.take()
	rec = e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}})
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body.String())
	}
	step("token (refresh_token)", 2)
	next := jsonField(t, rec, "refresh_token")
	rec = e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}})
	if rec.Code != http.StatusOK || jsonField(t, rec, "refresh_token") != next {
		t.Fatalf("refresh again inside the window: %d %s", rec.Code, rec.Body.String())
	}
	step("token (refresh_token again inside the reuse window)", 2)
	rec = e.postForm(pathIntrospect, url.Values{"token": {tok.AccessToken}}, plainRS.ID, plainRS.Secret)
	if rec.Code != http.StatusOK || jsonField(t, rec, "client_id") != clientID {
		t.Fatalf("introspect: %d %s", rec.Code, rec.Body.String())
	}
	step("introspect", 1)
	if looksLikeJWT(tok.AccessToken) != (format == config.AccessTokenJWT) {
		t.Errorf("format %s issued access token %.20s...", format, tok.AccessToken)
	}
	rec = e.postForm(pathRevoke, url.Values{"token": {tok.AccessToken}, "client_id": {clientID}})
	if rec.Code != http.StatusOK {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body.String())
	}
	if format == config.AccessTokenJWT {
		step("revoke (JWT access token: client, token, delete, mark the jti and feed it)", 4)
	} else {
		step("revoke (access token: client, token, delete)", 3)
	}
	skew.Store(int64(2 * time.Hour))
	rec = e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next}, "client_id": {clientID}})
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh two hours on: %d %s", rec.Code, rec.Body.String())
	}
	step("token (refresh_token, recording the client's use)", 2)
	if c, err := rs.GetClient(ctx, clientID); err != nil || now().Sub(c.LastUsedAt) > time.Minute {
		t.Fatalf("the client's later use was not recorded: %+v %v", c, err)
	}
	trips.take()
}

// TestRedisRoundTripsOfAgentGrants: client_credentials is one round trip (the grant's
// script and its index writes, pipelined); every device poll two, the approval's read
// then the poll or the redemption script; introspection of either token one.
func TestRedisRoundTripsOfAgentGrants(t *testing.T) {
	srv := redisserver.Start(t)
	ctx := t.Context()
	rs, err := redisstore.New(ctx, redisstore.Options{Addrs: []string{srv.Addr}, Prefix: "trips"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rs.Close() })
	if _, err := rs.Client().Pipelined(ctx, func(p goredis.Pipeliner) error { return p.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	trips := &redisTrips{}
	rs.Client().AddHook(trips)
	e := newAgentEnv(t, func(o *Options) { o.Store, o.Now = rs, time.Now })
	step := func(name string, want int) {
		t.Helper()
		if got := trips.take(); got != want {
			t.Errorf("%s: %d round trips, want %d", name, got, want)
		}
	}
	rec := e.postForm(pathToken, url.Values{"grant_type": {"client_credentials"}}, ccClient.ID, ccClient.Secret)
	if rec.Code != http.StatusOK {
		t.Fatalf("client_credentials: %d %s", rec.Code, rec.Body)
	}
	step("token (client_credentials)", 1)
	rec = e.postForm(pathIntrospect, url.Values{"token": {jsonField(t, rec, "access_token")}}, resourceServer.ID, resourceServer.Secret)
	if rec.Code != http.StatusOK || jsonField(t, rec, "sub") != ccClient.ID {
		t.Fatalf("introspect: %d %s", rec.Code, rec.Body)
	}
	step("introspect (client_credentials)", 1)

	da := e.deviceStart(t, url.Values{})
	trips.take()
	wantOAuthError(t, e.devicePoll(da.DeviceCode), 400, "authorization_pending")
	step("token (device_code, pending)", 2)
	e.browser().deviceApprove(t, da.VerificationURIComplete)
	trips.take()
	if rec := e.devicePoll(da.DeviceCode); rec.Code != http.StatusOK {
		t.Fatalf("device poll after approval: %d %s", rec.Code, rec.Body)
	}
	step("token (device_code, approved)", 2)
}

package resource

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

func TestMiddlewareAnswers(t *testing.T) {
	const rm = `resource_metadata="` + testPRMURL + `"`
	tests := []struct {
		name        string
		answer      func(map[string]any) // the introspection answer for "tok"; nil: unknown token
		request     func() *http.Request
		routeScopes []string
		wantStatus  int
		wantHeader  string // WWW-Authenticate
		wantAsked   int32  // introspections
	}{
		{
			name:       "a request without a token gets 401 naming the metadata and the scope",
			request:    func() *http.Request { return bearerRequest("/mcp", "") },
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer scope="mcp", ` + rm,
		},
		{
			name: "another authentication scheme counts as no token",
			request: func() *http.Request {
				r := bearerRequest("/mcp", "")
				r.SetBasicAuth("user", "pass")
				return r
			},
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer scope="mcp", ` + rm,
		},
		{
			name:       "an unknown token gets 401 invalid_token",
			request:    func() *http.Request { return bearerRequest("/mcp", "tok") },
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="token is not active", scope="mcp", ` + rm,
			wantAsked:  1,
		},
		{
			name:       "an expired token gets 401 even when the server still calls it active",
			answer:     func(a map[string]any) { a["exp"] = time.Now().Add(-time.Minute).Unix() },
			request:    func() *http.Request { return bearerRequest("/mcp", "tok") },
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="token has expired", scope="mcp", ` + rm,
			wantAsked:  1,
		},
		{
			name:       "a token issued for another resource gets 401",
			answer:     func(a map[string]any) { a["aud"] = []string{"https://other.example.com/mcp"} },
			request:    func() *http.Request { return bearerRequest("/mcp", "tok") },
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="token was issued for another resource", scope="mcp", ` + rm,
			wantAsked:  1,
		},
		{
			name:       "a token issued for no resource gets 401",
			answer:     func(a map[string]any) { delete(a, "aud") },
			request:    func() *http.Request { return bearerRequest("/mcp", "tok") },
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="token was issued for another resource", scope="mcp", ` + rm,
			wantAsked:  1,
		},
		{
			name:       "a refresh token, which introspects without token_type Bearer, gets 401",
			answer:     func(a map[string]any) { delete(a, "token_type") },
			request:    func() *http.Request { return bearerRequest("/mcp", "tok") },
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="not a bearer access token", scope="mcp", ` + rm,
			wantAsked:  1,
		},
		{
			name:       "a token from an authorization server not configured gets 401",
			answer:     func(a map[string]any) { a["iss"] = "https://evil.example.com" },
			request:    func() *http.Request { return bearerRequest("/mcp", "tok") },
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="token was issued by an authorization server this resource does not trust", scope="mcp", ` + rm,
			wantAsked:  1,
		},
		{
			name:       "a malformed token gets 401 without asking the authorization server",
			request:    func() *http.Request { return bearerRequest("/mcp", "not a token!") },
			wantStatus: http.StatusUnauthorized,
			wantHeader: `Bearer error="invalid_token", error_description="malformed token", scope="mcp", ` + rm,
		},
		{
			name:       "a token in the query string is refused with 400, header or not",
			answer:     func(map[string]any) {},
			request:    func() *http.Request { return bearerRequest("/mcp?access_token=tok", "tok") },
			wantStatus: http.StatusBadRequest,
			wantHeader: `Bearer error="invalid_request", error_description="access tokens must be sent in the Authorization header, not the query string", ` + rm,
		},
		{
			name:   "two Authorization headers are refused with 400",
			answer: func(map[string]any) {},
			request: func() *http.Request {
				r := bearerRequest("/mcp", "tok")
				r.Header.Add("Authorization", "Bearer tok")
				return r
			},
			wantStatus: http.StatusBadRequest,
			wantHeader: `Bearer error="invalid_request", error_description="more than one Authorization header", ` + rm,
		},
		{
			name:        "too little scope gets 403 naming every scope the route needs",
			answer:      func(map[string]any) {},
			request:     func() *http.Request { return bearerRequest("/mcp", "tok") },
			routeScopes: []string{"files:read", "files:write"},
			wantStatus:  http.StatusForbidden,
			wantHeader:  `Bearer error="insufficient_scope", error_description="the token lacks a scope this operation needs", scope="mcp files:read files:write", ` + rm,
			wantAsked:   1,
		},
		{
			name:        "enough scope reaches the handler",
			answer:      func(a map[string]any) { a["scope"] = "files:write mcp files:read" },
			request:     func() *http.Request { return bearerRequest("/mcp", "tok") },
			routeScopes: []string{"files:read", "files:write"},
			wantStatus:  http.StatusOK,
			wantAsked:   1,
		},
		{
			name:   "a lower-case bearer scheme and an upper-case audience host are fine",
			answer: func(a map[string]any) { a["aud"] = "HTTPS://MCP.EXAMPLE.COM/mcp" },
			request: func() *http.Request {
				r := bearerRequest("/mcp", "")
				r.Header.Set("Authorization", "bearer tok")
				return r
			},
			wantStatus: http.StatusOK,
			wantAsked:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			clock := newClock()
			if tt.answer != nil {
				as.set("tok", clock.Now(), tt.answer)
			}
			v := newTestVerifier(t, as, clock, nil)
			rec := serve(v.RequireScopes(tt.routeScopes...)(okHandler), tt.request())
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != tt.wantHeader {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, tt.wantHeader)
			}
			if got := as.introspections.Load(); got != tt.wantAsked {
				t.Errorf("%d introspections, want %d", got, tt.wantAsked)
			}
		})
	}
}

func TestAudience(t *testing.T) {
	tests := []struct {
		name         string
		aud          []string
		acceptOrigin bool
		want         bool
	}{
		{"the exact resource matches", []string{testResource}, false, true},
		{"one of several audiences matching is enough", []string{"https://other.example.com", testResource}, false, true},
		{"scheme and host compare case-insensitively", []string{"HTTPS://Mcp.Example.COM/mcp"}, false, true},
		{"a default port is the same as none", []string{"https://mcp.example.com:443/mcp"}, false, true},
		{"the path compares exactly", []string{"https://mcp.example.com/MCP"}, false, false},
		{"a trailing slash is another path", []string{"https://mcp.example.com/mcp/"}, false, false},
		{"another port is another resource", []string{"https://mcp.example.com:8443/mcp"}, false, false},
		{"http is not https", []string{"http://mcp.example.com/mcp"}, false, false},
		{"the bare origin is refused by default", []string{"https://mcp.example.com"}, false, false},
		{"the bare origin is accepted when configured", []string{"https://mcp.example.com/"}, true, true},
		{"another host's origin is refused even then", []string{"https://other.example.com"}, true, false},
		{"no audience is refused", nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(t, newFakeAS(t), newClock(), func(c *Config) { c.AcceptOriginAudience = tt.acceptOrigin })
			if got := v.audienceMatches(tt.aud); got != tt.want {
				t.Errorf("audienceMatches(%q) = %v, want %v", tt.aud, got, tt.want)
			}
		})
	}
}

func TestScopeHierarchy(t *testing.T) {
	v := newTestVerifier(t, newFakeAS(t), newClock(), func(c *Config) {
		c.ScopeImplies = map[string][]string{"admin": {"write"}, "write": {"read"}}
	})
	tests := []struct {
		name    string
		granted []string
		need    []string
		want    bool
	}{
		{"a broader scope covers the narrower one it implies", []string{"write"}, []string{"read"}, true},
		{"implication is transitive", []string{"admin"}, []string{"read", "write"}, true},
		{"a narrower scope does not cover a broader one", []string{"read"}, []string{"write"}, false},
		{"every needed scope must be covered", []string{"read"}, []string{"read", "other"}, false},
		{"needing nothing is always covered", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.HasScopes(&Info{Scopes: tt.granted}, tt.need...); got != tt.want {
				t.Errorf("HasScopes(%q, %q) = %v, want %v", tt.granted, tt.need, got, tt.want)
			}
		})
	}
}

func TestMiddlewareHandsTheTokenToHandlers(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	as.set("tok", clock.Now(), func(a map[string]any) { a["scope"] = "mcp files:read" })
	v := newTestVerifier(t, as, clock, nil)

	var info *Info
	var ti *auth.TokenInfo
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, _ = FromContext(r.Context())
		ti = auth.TokenInfoFromContext(r.Context())
	}))
	if rec := serve(h, bearerRequest("/mcp", "tok")); rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if info == nil || info.Subject != "user-1" || info.ClientID != "client-1" ||
		!slices.Equal(info.Scopes, []string{"mcp", "files:read"}) || info.UpstreamAccessToken != "upstream-tok" ||
		!info.ExpiresAt.Equal(clock.Now().Add(15*time.Minute)) || info.UpstreamProvider != "github" {
		t.Errorf("FromContext = %v", info)
	}
	if ti == nil || ti.UserID != "user-1" {
		t.Fatalf("the SDK's TokenInfo is %+v, want one for user-1", ti)
	}
	if fromSDK, ok := FromTokenInfo(ti); !ok || fromSDK.UpstreamAccessToken != "upstream-tok" {
		t.Errorf("FromTokenInfo = %v, %v", fromSDK, ok)
	}
}

func TestRouteScopesInsideMiddlewareReuseTheValidatedToken(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	as.set("tok", clock.Now(), func(a map[string]any) { a["scope"] = "mcp admin" })
	v := newTestVerifier(t, as, clock, func(c *Config) { c.CacheTTL = -1 }) // no cache: count every validation

	h := v.Middleware(v.RequireScopes("admin")(okHandler))
	if rec := serve(h, bearerRequest("/admin", "tok")); rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if got := as.introspections.Load(); got != 1 {
		t.Errorf("%d introspections, want 1", got)
	}
}

func TestAuthorizationServerTroubleIs503(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(*fakeAS, *Config)
	}{
		{"the server answers 500", func(as *fakeAS, _ *Config) { as.setStatus(http.StatusInternalServerError) }},
		{"the server is down", func(as *fakeAS, _ *Config) { as.srv.Close() }},
		{"the server refuses our credentials", func(_ *fakeAS, c *Config) { c.ClientSecret = "wrong" }},
		{"the server answers garbage", func(as *fakeAS, c *Config) { c.IntrospectionEndpoint = as.issuer + "/garbage" }},
		{"discovery finds another issuer", func(as *fakeAS, c *Config) {
			c.IntrospectionEndpoint = ""
			as.metaIssuer = "https://impostor.example.com"
		}},
	}
	for _, tt := range tests {
		t.Run("when "+tt.name, func(t *testing.T) {
			as := newFakeAS(t)
			clock := newClock()
			as.set("tok", clock.Now(), nil)
			v := newTestVerifier(t, as, clock, func(c *Config) { tt.breakIt(as, c) })
			rec := serve(v.Middleware(okHandler), bearerRequest("/mcp", "tok"))
			if rec.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", rec.Code)
			}
			if got := rec.Header().Get("Retry-After"); got != "5" {
				t.Errorf("Retry-After %q, want 5", got)
			}
			if got := rec.Header().Get("WWW-Authenticate"); got != "" {
				t.Errorf("WWW-Authenticate %q on a 503: clients would start a new login", got)
			}
		})
	}
}

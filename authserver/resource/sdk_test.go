package resource

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// The TokenVerifier plugged into the Go MCP SDK's own middleware.
func TestTokenVerifierWithSDKMiddleware(t *testing.T) {
	as := newFakeAS(t)
	clock := newClock()
	as.set("tok", clock.Now(), func(a map[string]any) { a["scope"] = "admin" })
	as.set("foreign", clock.Now(), func(a map[string]any) { a["aud"] = "https://other.example.com/mcp" })
	v := newTestVerifier(t, as, clock, func(c *Config) { c.ScopeImplies = map[string][]string{"admin": {"mcp"}} })

	var seen *auth.TokenInfo
	h := auth.RequireBearerToken(v.TokenVerifier(), &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: v.MetadataURL(),
		Scopes:              v.RequiredScopes(),
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = auth.TokenInfoFromContext(r.Context()) }))

	t.Run("a valid token reaches the handler with the user, expanded scopes and upstream token", func(t *testing.T) {
		rec := serve(h, bearerRequest("/mcp", "tok"))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if seen == nil || seen.UserID != "user-1" || !slices.Equal(seen.Scopes, []string{"admin", "mcp"}) ||
			!seen.Expiration.Equal(clock.Now().Add(15*time.Minute)) {
			t.Fatalf("TokenInfo = %+v", seen)
		}
		if info, ok := FromTokenInfo(seen); !ok || info.UpstreamAccessToken != "upstream-tok" {
			t.Errorf("FromTokenInfo = %v, %v", info, ok)
		}
	})

	tests := []struct {
		name       string
		token      string
		wantStatus int
	}{
		{"an unknown token gets 401", "unknown", http.StatusUnauthorized},
		{"a token for another resource gets 401", "foreign", http.StatusUnauthorized},
		{"a malformed token gets 401", "a,b", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(h, bearerRequest("/mcp", tt.token))
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			want := `Bearer resource_metadata="` + testPRMURL + `", scope="mcp"`
			if got := rec.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
		})
	}

	t.Run("an unreachable authorization server is an error, not an invalid token", func(t *testing.T) {
		as.setStatus(http.StatusServiceUnavailable)
		if rec := serve(h, bearerRequest("/mcp", "fresh")); rec.Code != http.StatusInternalServerError {
			t.Errorf("status %d, want the SDK's 500", rec.Code)
		}
	})
}

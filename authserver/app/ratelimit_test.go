package app

import (
	"net/http"
	"strings"
	"testing"
)

// TestRegistrationRateLimitComesFromTheFile: dynamicRegistration.rateLimit and
// trustedProxies reach the server.
func TestRegistrationRateLimitComesFromTheFile(t *testing.T) {
	register := func(t *testing.T, base, forwarded string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/oauth/register",
			strings.NewReader(`{"token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1/cb"]}`))
		req.Header.Set("Content-Type", "application/json")
		if forwarded != "" {
			req.Header.Set("X-Forwarded-For", forwarded)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("a burst of one", func(t *testing.T) {
		base := start(t, "dynamicRegistration: {rateLimit: {burst: 1, every: 1h}}\n", nil)
		if got := register(t, base, ""); got != http.StatusCreated {
			t.Fatalf("first registration: %d", got)
		}
		if got := register(t, base, ""); got != http.StatusTooManyRequests {
			t.Fatalf("second registration: %d, want 429", got)
		}
	})
	t.Run("behind a trusted proxy, each forwarded client counts on its own", func(t *testing.T) {
		base := start(t, "trustedProxies: [127.0.0.1]\ndynamicRegistration: {rateLimit: {burst: 1, every: 1h}}\n", nil)
		for _, client := range []string{"198.51.100.1", "198.51.100.2"} {
			if got := register(t, base, client); got != http.StatusCreated {
				t.Fatalf("registration for %s: %d", client, got)
			}
		}
	})
	t.Run("a burst of zero turns the limit off", func(t *testing.T) {
		// As does a maxPerSource of zero: the count of live registrations.
		base := start(t, "dynamicRegistration: {rateLimit: {burst: 0}, maxPerSource: 0}\n", nil)
		for range 40 {
			if got := register(t, base, ""); got != http.StatusCreated {
				t.Fatalf("registration: %d", got)
			}
		}
	})
	t.Run("maxPerSource bounds one address's live registrations", func(t *testing.T) {
		base := start(t, "dynamicRegistration: {rateLimit: {burst: 0}, maxPerSource: 2, idleTTL: 1h}\n", nil)
		for i := range 2 {
			if got := register(t, base, ""); got != http.StatusCreated {
				t.Fatalf("registration %d: %d", i+1, got)
			}
		}
		if got := register(t, base, ""); got != http.StatusTooManyRequests {
			t.Fatalf("third registration: %d, want 429", got)
		}
	})
}

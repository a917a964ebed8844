package authserver

import (
	"net/url"
	"strings"
	"testing"
)

// TestNoSecretReachesTheStoreInClear runs every step that writes to the store and then
// looks for each secret handed out in everything the store was given: keys, records
// and ciphertexts.
func TestNoSecretReachesTheStoreInClear(t *testing.T) {
	e := newEnv(t)
	r := e.register(`{"redirect_uris":["https://app.example.com/cb"],"grant_types":["authorization_code","refresh_token"]}`)
	p := newPKCE()
	b := e.browser()

	// Authorize, consent, and note the upstream state and the flow cookie.
	q := authzQuery(r.ClientID, webRedirect, p)
	form := consentForm(t, b.get(authorizeURL(q)).Body.String())
	form.Set("decision", "approve")
	up := location(t, b.postForm(testIssuer+pathConsent, form))
	state := up.Query().Get("state")
	flow := ""
	issuer, _ := url.Parse(testIssuer)
	for _, c := range b.jar.Cookies(issuer) {
		if c.Name == "__Host-mcpauth_flow" {
			flow = c.Value
		}
	}
	back := location(t, b.get(callbackURL(url.Values{"code": {goodUpstreamCode}, "state": {state}})))
	code := back.Query().Get("code")
	first := e.exchange(r.ClientID, webRedirect, code, p, r.ClientID, r.ClientSecret)
	rec := e.postForm(pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}, r.ClientID, r.ClientSecret)
	var second tokens
	decodeJSON(t, rec.Body, &second)
	e.introspect(second.AccessToken)

	seen := e.store.recorded()
	secrets := map[string]string{
		"client secret":          r.ClientSecret,
		"upstream state":         state,
		"flow cookie":            flow,
		"authorization code":     code,
		"first access token":     first.AccessToken,
		"first refresh token":    first.RefreshToken,
		"second access token":    second.AccessToken,
		"second refresh token":   second.RefreshToken,
		"upstream access token":  "upstream-access-1",
		"upstream refresh token": "upstream-refresh-1",
	}
	for name, s := range secrets {
		if s == "" {
			t.Fatalf("%s: not captured", name)
		}
		if strings.Contains(seen, s) {
			t.Errorf("the %s reached the store in clear", name)
		}
	}
	// The random part alone must not be there either (a store keyed by it would be
	// as good as clear).
	for _, tok := range []string{code, first.AccessToken, second.RefreshToken} {
		if strings.Contains(seen, tok[len(tok)-randomPartLen:]) {
			t.Errorf("the random part of %s reached the store", tok[:7])
		}
	}
}

// TestEveryAuthorizationResponseCarriesIss checks RFC 9207 across all the ways an
// authorization response is produced: success, request errors, consent denial and
// upstream errors.
func TestEveryAuthorizationResponseCarriesIss(t *testing.T) {
	e := newEnv(t)
	responses := map[string]*url.URL{}

	responses["success"] = e.browser().login(t, authzQuery(trustedClient.ID, webRedirect, newPKCE()))

	q := authzQuery(trustedClient.ID, webRedirect, newPKCE())
	q.Del("code_challenge")
	responses["request error"] = location(t, e.get(pathAuthorize+"?"+q.Encode()))

	b := e.browser()
	form := consentForm(t, b.get(authorizeURL(authzQuery(publicClient.ID, webRedirect, newPKCE()))).Body.String())
	form.Set("decision", "deny")
	responses["consent denied"] = location(t, b.postForm(testIssuer+pathConsent, form))

	b, state := startLogin(t, e)
	responses["upstream error"] = location(t, b.get(callbackURL(url.Values{"error": {"access_denied"}, "state": {state}})))

	for name, u := range responses {
		if got := u.Query()["iss"]; len(got) != 1 || got[0] != testIssuer {
			t.Errorf("%s: iss %v in %s", name, got, u)
		}
	}
}

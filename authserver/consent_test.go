package authserver

import (
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

func TestConsentPageNamesTheClientRedirectHostScopesAndUpstream(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UpstreamDisplayName = "Example IdP" })
	q := authzQuery(publicClient.ID, webRedirect, newPKCE())
	q.Set("scope", "read write")
	rec := e.browser().get(authorizeURL(q))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d; an untrusted client must see the consent page", rec.Code)
	}
	wantHTMLPage(t, rec)
	body := rec.Body.String()
	for _, want := range []string{"Public App", "app.example.com", "<code>read</code>", "<code>write</code>", "Example IdP", "Test Login", `action="https://as.example.com/oauth/consent"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(strings.ToLower(body), "<script") {
		t.Error("page has a script")
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self' https://idp.example.com https://app.example.com"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
}

func TestConsentPageEscapesTheClientName(t *testing.T) {
	e := newEnv(t)
	rec := e.postJSON(pathRegister, `{"client_name":"<img src=x onerror=alert(1)>","redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`)
	id := jsonField(t, rec, "client_id")
	page := e.browser().get(authorizeURL(authzQuery(id, webRedirect, newPKCE()))).Body.String()
	if strings.Contains(page, "<img") || !strings.Contains(page, "&lt;img") {
		t.Errorf("client name not escaped:\n%s", page)
	}
}

func TestConsentApprovalContinuesUpstreamAndIsRemembered(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	q := authzQuery(publicClient.ID, webRedirect, newPKCE())
	form := consentForm(t, b.get(authorizeURL(q)).Body.String())
	form.Set("decision", "approve")
	rec := b.postForm(testIssuer+pathConsent, form)
	if u := location(t, rec); u.Host != "idp.example.com" {
		t.Fatalf("approve redirected to %s", u)
	}
	c := findCookie(rec.Result().Cookies(), "__Host-mcpauth_consent")
	if c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("consent cookie %+v; want Secure, HttpOnly, SameSite=Lax", c)
	}

	tests := []struct {
		name    string
		b       *browser
		mod     func(q url.Values)
		consent bool
	}{
		{"the same browser and scopes skip the page", b, func(url.Values) {}, false},
		{"a narrower scope skips the page", b, func(q url.Values) { q.Set("scope", "read") }, false},
		{"a wider scope asks again", b, func(q url.Values) { q.Set("scope", "read write") }, true},
		{"prompt=consent asks again", b, func(q url.Values) { q.Set("prompt", "consent") }, true},
		{"another browser asks", e.browser(), func(url.Values) {}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := authzQuery(publicClient.ID, webRedirect, newPKCE())
			tt.mod(q)
			rec := tt.b.get(authorizeURL(q))
			if got := rec.Code == http.StatusOK; got != tt.consent {
				t.Fatalf("consent page shown: %v, want %v (status %d)", got, tt.consent, rec.Code)
			}
		})
	}
}

func TestConsentDenialReturnsAccessDeniedWithoutGoingUpstream(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	form := consentForm(t, b.get(authorizeURL(authzQuery(publicClient.ID, webRedirect, newPKCE()))).Body.String())
	form.Set("decision", "deny")
	rec := b.postForm(testIssuer+pathConsent, form)
	wantErrorRedirect(t, location(t, rec), webRedirect, "access_denied")
	if strings.Contains(e.store.recorded(), "SavePending") {
		t.Error("a denied request created a pending authorization")
	}
	if findCookie(rec.Result().Cookies(), "__Host-mcpauth_consent") != nil {
		t.Error("a denial was remembered as consent")
	}
}

func TestConsentFormIsRefusedWithoutAValidCSRFToken(t *testing.T) {
	tests := []struct {
		name string
		// tamper changes the form or the browser that posts it.
		tamper func(e *env, b *browser, form url.Values) *browser
	}{
		{"from another browser (login CSRF)", func(e *env, _ *browser, _ url.Values) *browser { return e.browser() }},
		{"with the CSRF token removed", func(_ *env, b *browser, f url.Values) *browser { f.Del("csrf_token"); return b }},
		{"with a forged CSRF token", func(_ *env, b *browser, f url.Values) *browser {
			f.Set("csrf_token", randomString(40))
			return b
		}},
		{"with the redirect URI swapped for another registered one", func(_ *env, b *browser, f url.Values) *browser {
			f.Set("redirect_uri", loopbackRedirect)
			return b
		}},
		{"with a scope added", func(_ *env, b *browser, f url.Values) *browser { f.Set("scope", "read write"); return b }},
		{"with the state changed", func(_ *env, b *browser, f url.Values) *browser { f.Set("state", "attacker"); return b }},
		{"after it expired", func(e *env, b *browser, _ url.Values) *browser {
			e.clock.Advance(DefaultPendingTTL + time.Second)
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			form := consentForm(t, b.get(authorizeURL(authzQuery(publicClient.ID, webRedirect, newPKCE()))).Body.String())
			form.Set("decision", "approve")
			poster := tt.tamper(e, b, form)
			rec := poster.postForm(testIssuer+pathConsent, form)
			if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
				t.Fatalf("status %d, Location %q; want a 400 page", rec.Code, rec.Header().Get("Location"))
			}
			wantHTMLPage(t, rec)
		})
	}
}

func TestConsentFormErrors(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	form := consentForm(t, b.get(authorizeURL(authzQuery(publicClient.ID, webRedirect, newPKCE()))).Body.String())
	if rec := b.postForm(testIssuer+pathConsent, form); rec.Code != http.StatusBadRequest {
		t.Errorf("no decision: status %d, want 400", rec.Code)
	}
	if rec := b.get(testIssuer + pathConsent); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", rec.Code)
	}
	big := url.Values{"state": {strings.Repeat("x", maxConsentBody)}}
	if rec := b.postForm(testIssuer+pathConsent, big); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized form: status %d, want 413", rec.Code)
	}
}

func TestConsentCookieWithABadSignatureIsIgnored(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login(t, authzQuery(publicClient.ID, webRedirect, newPKCE()))
	u, _ := url.Parse(testIssuer)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == "__Host-mcpauth_consent" {
			payload, _, _ := strings.Cut(c.Value, ".")
			c.Value = payload + "." + randomString(32)
			c.Path, c.Secure = "/", true
			b.jar.SetCookies(u, []*http.Cookie{c})
		}
	}
	if rec := b.get(authorizeURL(authzQuery(publicClient.ID, webRedirect, newPKCE()))); rec.Code != http.StatusOK {
		t.Fatalf("status %d; a forged consent cookie must not skip the page", rec.Code)
	}
}

func TestConsentRememberedEntriesExpire(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login(t, authzQuery(publicClient.ID, webRedirect, newPKCE()))
	e.clock.Advance(DefaultConsentTTL + time.Second)
	if rec := b.get(authorizeURL(authzQuery(publicClient.ID, webRedirect, newPKCE()))); rec.Code != http.StatusOK {
		t.Fatalf("status %d; an expired approval must not count", rec.Code)
	}
}

func TestConsentIsRequiredForDynamicAndMetadataClients(t *testing.T) {
	const cimdID = "https://tools.example.org/client.json"
	e := newEnv(t, func(o *Options) {
		o.CIMD = fakeCIMD{cimdID: {ClientID: cimdID, ClientName: "Doc Client", RedirectURIs: []string{"http://127.0.0.1/callback"}}}
	})
	id := jsonField(t, e.postJSON(pathRegister, `{"client_name":"Dyn","redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"none"}`), "client_id")
	dyn := e.browser().get(authorizeURL(authzQuery(id, webRedirect, newPKCE())))
	if dyn.Code != http.StatusOK || !strings.Contains(dyn.Body.String(), "registered by the application itself") {
		t.Errorf("dynamic client: status %d", dyn.Code)
	}
	doc := e.browser().get(authorizeURL(authzQuery(cimdID, "http://127.0.0.1:4567/callback", newPKCE())))
	body := doc.Body.String()
	if doc.Code != http.StatusOK || !strings.Contains(body, "described by tools.example.org") || !strings.Contains(body, `class="warn"`) {
		t.Errorf("metadata client: status %d, page:\n%s", doc.Code, body)
	}
	if csp := doc.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "http://127.0.0.1:4567") {
		t.Errorf("CSP %q does not allow the loopback redirect", csp)
	}
}

func TestCSPSourceRefusesHeaderInjection(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"an https origin", "https://a.example.com:8443/x?y", "https://a.example.com:8443", true},
		{"a private-use scheme", "com.example.app:/cb", "com.example.app:", true},
		{"an IPv6 loopback", "http://[::1]:99/cb", "http://[::1]:99", true},
		{"a host with a semicolon", "https://a.example.com;script-src/x", "", false},
		{"not a URL", "%zz", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := cspSource(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("cspSource(%q) = %q, %v", tt.in, got, ok)
			}
		})
	}
}

// TestConsentFormCarriesHostileValuesIntact: the consent form's hidden inputs are
// built outside the template (hiddenInputs). Parsed as a browser parses the page,
// values made to break out of an attribute stay inside it, exactly as sent, add no
// element, and the form they make is accepted when posted back.
func TestConsentFormCarriesHostileValuesIntact(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	hostile := `"><script>alert(1)</script><input name="decision" value="approve">&amp;'+ é ' onfocus=alert(2) x="`
	q := authzQuery(publicClient.ID, webRedirect, newPKCE())
	q.Set("state", hostile)
	rec := b.get(authorizeURL(q))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	doc, err := html.Parse(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "script":
			t.Error("the page has a script element")
		case "input":
			attrs := map[string]string{}
			for _, a := range n.Attr {
				attrs[a.Key] = a.Val
			}
			if len(attrs) != 3 || attrs["type"] != "hidden" {
				t.Errorf("an input with attributes %v, want exactly type=hidden, name and value", attrs)
			}
			form.Add(attrs["name"], attrs["value"])
		}
	}
	want := url.Values{"csrf_token": form["csrf_token"]}
	for k, v := range q {
		want[k] = v
	}
	if !reflect.DeepEqual(form, want) {
		t.Fatalf("the form carries\n%v\nwant\n%v", form, want)
	}
	form.Set("decision", "approve")
	if u := location(t, b.postForm(testIssuer+pathConsent, form)); u.Host != "idp.example.com" {
		t.Fatalf("approving the parsed form redirected to %s", u)
	}
}

// TestCSRFPayloadIsValuesEncode: csrfPayload writes the parameters exactly as
// url.Values.Encode of the request's values, as it did before it stopped building the
// map: a token signed by either is the same token.
func TestCSRFPayloadIsValuesEncode(t *testing.T) {
	hostile := []string{"", "a", "a b+c", "&=?#%", "é", `"'<>`, "\x00\x7f", "https://app.example.com/cb?x=1&y=2"}
	pick := func(i, j int) string { return hostile[(i*7+j*3)%len(hostile)] }
	for i := range 64 {
		req := authzRequest{
			ClientID: pick(i, 1), RedirectURI: pick(i, 2), ResponseType: pick(i, 3), State: pick(i, 4), Scope: pick(i, 5),
			CodeChallenge: pick(i, 6), CodeChallengeMethod: pick(i, 7), Prompt: pick(i, 8),
		}
		for j := range i % 4 {
			req.Resource = append(req.Resource, pick(i, 9+j))
		}
		want := strconv.FormatInt(int64(i), 10) + "\x00bind\x00" + req.values().Encode()
		if got := csrfPayload(int64(i), "bind", req); got != want {
			t.Errorf("%+v:\ngot  %q\nwant %q", req, got, want)
		}
	}
}

// TestCSRFPayloadCoversEveryField: each field of authzRequest, set alone, is signed as
// url.Values.Encode of the request's values signs it, so that a parameter added to
// authzRequest (and values) and not to csrfPayload fails here.
func TestCSRFPayloadCoversEveryField(t *testing.T) {
	typ := reflect.TypeOf(authzRequest{})
	for i := range typ.NumField() {
		var req authzRequest
		f := reflect.ValueOf(&req).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("v &é" + typ.Field(i).Name)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"a b", "c&d"}))
		default:
			t.Fatalf("field %s: no filler for %s", typ.Field(i).Name, f.Type())
		}
		want := "7\x00bind\x00" + req.values().Encode()
		if got := csrfPayload(7, "bind", req); got != want {
			t.Errorf("%s:\ngot  %q\nwant %q", typ.Field(i).Name, got, want)
		}
	}
}

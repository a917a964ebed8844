package upstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

// routes is a RoundTripper that serves fixed URLs ("METHOD https://host/path") with
// handlers, so a preset's real default endpoints can be exercised without a network.
type routes map[string]http.HandlerFunc

func (rs routes) RoundTrip(r *http.Request) (*http.Response, error) {
	h, ok := rs[r.Method+" "+r.URL.Scheme+"://"+r.URL.Host+r.URL.Path]
	if !ok {
		return nil, fmt.Errorf("unexpected request %s %s", r.Method, r.URL)
	}
	rec := httptest.NewRecorder()
	h(rec, r)
	return rec.Result(), nil
}

func presetConfig(typ upstream.Type, c *http.Client) upstream.Config {
	return upstream.Config{
		Type: typ, ClientID: "cid", ClientSecret: "csecret", RedirectURL: callback, HTTPClient: c,
	}
}

// github answers as GitHub does: form-encoded token responses (without an Accept
// header asking for JSON), errors with HTTP 200, a numeric id, no public email.
func github(t *testing.T, emailsStatus int) (routes, *upstream.AuthParams) {
	ap := upstream.NewAuthParams()
	return routes{
		"POST https://github.com/login/oauth/access_token": func(w http.ResponseWriter, r *http.Request) {
			if err := r.ParseForm(); err != nil {
				t.Error(err)
			}
			if _, _, basic := r.BasicAuth(); basic || r.PostForm.Get("client_secret") != "csecret" {
				t.Errorf("github credentials not in the body: %v", r.PostForm)
			}
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			switch {
			case r.PostForm.Get("grant_type") == "refresh_token":
				w.Write([]byte("error=bad_refresh_token&error_description=The+refresh+token+passed+is+incorrect+or+expired."))
			case r.PostForm.Get("code") != "good" || r.PostForm.Get("code_verifier") != ap.Verifier:
				w.Write([]byte("error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired."))
			default:
				w.Write([]byte("access_token=gho_abc&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer"))
			}
		},
		"GET https://api.github.com/user": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer gho_abc" || r.Header.Get("User-Agent") == "" {
				http.Error(w, `{"message":"Requires authentication"}`, http.StatusUnauthorized)
				return
			}
			w.Write([]byte(`{"login":"octocat","id":583231,"name":"The Octocat","email":null}`))
		},
		"GET https://api.github.com/user/emails": func(w http.ResponseWriter, r *http.Request) {
			if emailsStatus != http.StatusOK {
				http.Error(w, `{"message":"Not Found"}`, emailsStatus)
				return
			}
			w.Write([]byte(`[{"email":"old@example.com","primary":false,"verified":true},
				{"email":"fake@example.com","primary":true,"verified":false},
				{"email":"octocat@github.com","primary":true,"verified":true}]`))
		},
	}, &ap
}

func TestGitHubPreset(t *testing.T) {
	ctx := context.Background()
	rt, ap := github(t, http.StatusOK)
	p := newProvider(t, presetConfig(upstream.TypeGitHub, &http.Client{Transport: rt}))

	authURL := p.AuthCodeURL("st", *ap)
	if !strings.HasPrefix(authURL, "https://github.com/login/oauth/authorize?") {
		t.Errorf("AuthCodeURL() = %s", authURL)
	}
	q := query(t, authURL)
	if q.Get("scope") != "read:user user:email" || q.Get("code_challenge") != s256(ap.Verifier) || q.Get("state") != "st" {
		t.Errorf("authorization parameters = %v", q)
	}

	tok, id, err := p.Exchange(ctx, "good", *ap)
	if err != nil {
		t.Fatal(err)
	}
	// GitHub lists the granted scopes with commas; the server compares them with the
	// upstream scopes a step-up needs, so they come out space-separated.
	if tok.AccessToken != "gho_abc" || tok.TokenType != "Bearer" || tok.Scope != "read:user user:email" || !tok.Expiry.IsZero() {
		t.Errorf("token = %+v", tok)
	}
	if id.Subject != "583231" || id.Name != "octocat" || id.Email != "octocat@github.com" {
		t.Errorf("identity = %+v, want numeric id, login as name, primary verified email", id)
	}

	_, _, err = p.Exchange(ctx, "bad", *ap)
	wantIs(t, err, upstream.ErrExchange)
	wantCode(t, err, "bad_verification_code")

	_, err = p.Refresh(ctx, "ghr_old")
	wantIs(t, err, upstream.ErrNoRefresh)
}

func TestGitHubWithoutEmailPermission(t *testing.T) {
	rt, ap := github(t, http.StatusNotFound)
	p := newProvider(t, presetConfig(upstream.TypeGitHub, &http.Client{Transport: rt}))
	_, id, err := p.Exchange(context.Background(), "good", *ap)
	if err != nil {
		t.Fatalf("Exchange: %v (a missing email permission must not fail the login)", err)
	}
	if id.Subject != "583231" || id.Email != "" {
		t.Errorf("identity = %+v, want no email", id)
	}
}

func TestDropboxPreset(t *testing.T) {
	rt := &recordingTransport{}
	p := newProvider(t, presetConfig(upstream.TypeDropbox, &http.Client{Transport: rt}))
	authURL := p.AuthCodeURL("st", upstream.NewAuthParams())
	if !strings.HasPrefix(authURL, "https://www.dropbox.com/oauth2/authorize?") {
		t.Errorf("AuthCodeURL() = %s", authURL)
	}
	if q := query(t, authURL); q.Get("token_access_type") != "offline" || !q.Has("code_challenge") {
		t.Errorf("authorization parameters = %v, want offline access and PKCE", q)
	}
	p.Exchange(context.Background(), "code", upstream.NewAuthParams())
	if got := rt.requested(); len(got) != 1 || got[0] != "https://api.dropboxapi.com/oauth2/token" {
		t.Errorf("token requests = %v, want one to the default Dropbox endpoint", got)
	}
}

// Overrides point a preset at test servers: the fake IdP for the OAuth part and a
// Dropbox-shaped RPC for the account.
func TestDropboxPresetWithOverrides(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{AuthMethods: []string{"client_secret_basic"}})
	account := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.Method != http.MethodPost || !srv.ValidAccessToken(tok) {
			http.Error(w, "Error in call to API function \"users/get_current_account\"", http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"account_id":     "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
			"name":           map[string]any{"display_name": "Franz Ferdinand (Personal)"},
			"email":          "franz@dropbox.com",
			"email_verified": true,
		})
	}))
	defer account.Close()
	c := srv.OAuth2Config(callback)
	c.Type, c.UserIDField, c.UserInfoURL = upstream.TypeDropbox, "", account.URL
	p := newProvider(t, c)

	tok, id := mustLogin(t, srv, p)
	if id.Subject != "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc" || id.Name != "Franz Ferdinand (Personal)" || id.Email != "franz@dropbox.com" {
		t.Errorf("identity = %+v", id)
	}
	if got := srv.LastAuthorizeRequest().Get("token_access_type"); got != "offline" {
		t.Errorf("token_access_type = %q at the overridden authorize endpoint", got)
	}
	if _, err := p.Refresh(context.Background(), tok.RefreshToken); err != nil {
		t.Errorf("Refresh: %v", err)
	}
}

func TestOIDCPresetsDiscoverTheirIssuer(t *testing.T) {
	for typ, issuer := range map[upstream.Type]string{
		upstream.TypeGoogle:   "https://accounts.google.com",
		upstream.TypeLinkedIn: "https://www.linkedin.com/oauth",
		upstream.TypeSlack:    "https://slack.com",
	} {
		t.Run(string(typ), func(t *testing.T) {
			rt := &recordingTransport{}
			_, err := upstream.New(context.Background(), presetConfig(typ, &http.Client{Transport: rt}))
			if err == nil || !strings.HasPrefix(err.Error(), "oidc discovery for "+issuer+": ") {
				t.Errorf("New() error = %v, want a discovery error naming %s", err, issuer)
			}
			if got := rt.requested(); len(got) != 1 || got[0] != issuer+"/.well-known/openid-configuration" {
				t.Errorf("requests = %v", got)
			}
		})
	}
}

func TestOIDCPresetsAgainstTheFake(t *testing.T) {
	tests := []struct {
		typ    upstream.Type
		scope  string
		extras map[string]string
	}{
		{upstream.TypeGoogle, "openid email profile", map[string]string{"access_type": "offline", "prompt": "consent"}},
		{upstream.TypeLinkedIn, "openid profile email", nil},
		{upstream.TypeSlack, "openid profile email", nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.typ), func(t *testing.T) {
			srv := upstreamtest.NewServer(t, upstreamtest.Options{})
			c := srv.OIDCConfig(callback)
			c.Type = tt.typ
			p := newProvider(t, c)
			if p.Name() != string(tt.typ) {
				t.Errorf("Name() = %q", p.Name())
			}
			_, id := mustLogin(t, srv, p)
			if id.Subject != upstreamtest.DefaultUser.Subject {
				t.Errorf("identity = %+v", id)
			}
			q := srv.LastAuthorizeRequest()
			if q.Get("scope") != tt.scope || q.Get("nonce") == "" {
				t.Errorf("scope = %q, nonce = %q", q.Get("scope"), q.Get("nonce"))
			}
			for k, v := range tt.extras {
				if q.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v)
				}
			}
		})
	}
}

func TestSlackDeadRefreshToken(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	slackToken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":false,"error":"invalid_refresh_token"}`)) // Slack: HTTP 200
	}))
	defer slackToken.Close()
	c := srv.OIDCConfig(callback)
	c.Type, c.TokenURL = upstream.TypeSlack, slackToken.URL
	_, err := newProvider(t, c).Refresh(context.Background(), "xoxe-1-old")
	wantIs(t, err, upstream.ErrNoRefresh)
}

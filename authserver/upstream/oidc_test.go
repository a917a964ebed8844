package upstream_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

func TestOIDCAuthCodeURL(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	p := newProvider(t, srv.OIDCConfig(callback))
	if p.Name() != "oidc" || !p.SupportsPKCE() {
		t.Fatalf("Name() = %q, SupportsPKCE() = %v; want oidc with PKCE (discovery lists S256)", p.Name(), p.SupportsPKCE())
	}
	ap := upstream.NewAuthParams()
	authURL := p.AuthCodeURL("st", ap)
	if !strings.HasPrefix(authURL, srv.AuthorizeURL+"?") {
		t.Errorf("AuthCodeURL() = %s, want the discovered endpoint", authURL)
	}
	q := query(t, authURL)
	for k, want := range map[string]string{
		"state":                 "st",
		"nonce":                 ap.Nonce,
		"scope":                 "openid email profile",
		"redirect_uri":          callback,
		"code_challenge":        s256(ap.Verifier),
		"code_challenge_method": "S256",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestOIDCAlwaysAsksForOpenID(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	c := srv.OIDCConfig(callback)
	c.Scopes = []string{"email", "groups"}
	p := newProvider(t, c)
	if got := query(t, p.AuthCodeURL("s", upstream.NewAuthParams())).Get("scope"); got != "openid email groups" {
		t.Errorf("scope = %q, want openid added first", got)
	}
}

func TestOIDCPKCEFollowsDiscovery(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{NoPKCEDiscovery: true})
	p := newProvider(t, srv.OIDCConfig(callback))
	if p.SupportsPKCE() {
		t.Fatal("SupportsPKCE() = true although discovery lists no S256")
	}
	if q := query(t, p.AuthCodeURL("s", upstream.NewAuthParams())); q.Has("code_challenge") {
		t.Error("challenge sent although discovery lists no S256")
	}
	// The fake refuses a verifier without a challenge: no verifier may be sent either.
	mustLogin(t, srv, p)

	c := srv.OIDCConfig(callback)
	c.PKCE = upstream.PKCEAlways
	forced := newProvider(t, c)
	if !forced.SupportsPKCE() || !query(t, forced.AuthCodeURL("s", upstream.NewAuthParams())).Has("code_challenge") {
		t.Error("PKCEAlways sent no challenge")
	}
	mustLogin(t, srv, forced)
}

func TestOIDCExchange(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{User: &upstreamtest.User{
		Subject: "alice-1",
		Email:   "alice@example.com",
		Name:    "Alice",
		Groups:  []string{"eng", "admins"},
		Claims:  map[string]any{"team": "blue"},
	}})
	// Groups only in userinfo: the identity must merge both sources.
	srv.MutateIDToken(func(c map[string]any) { delete(c, "groups") })
	p := newProvider(t, srv.OIDCConfig(callback))

	tok, id := mustLogin(t, srv, p)
	if id.Subject != "alice-1" || id.Email != "alice@example.com" || id.Name != "Alice" ||
		!slices.Equal(id.Groups, []string{"eng", "admins"}) {
		t.Errorf("identity = %+v", id)
	}
	if id.Claims["team"] != "blue" || id.Claims["iss"] != srv.Issuer {
		t.Errorf("claims = %v, want ID token and userinfo claims", id.Claims)
	}
	if tok.IDToken == "" || tok.RefreshToken == "" || !srv.ValidAccessToken(tok.AccessToken) {
		t.Errorf("token = %+v", tok)
	}
	if n := srv.UserInfoCalls(); n != 1 {
		t.Errorf("userinfo called %d times, want 1", n)
	}
}

func TestOIDCWithoutUserInfoUsesTheIDToken(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{NoUserInfo: true})
	_, id := mustLogin(t, srv, newProvider(t, srv.OIDCConfig(callback)))
	if id.Subject != upstreamtest.DefaultUser.Subject || id.Email != upstreamtest.DefaultUser.Email {
		t.Errorf("identity = %+v, want the default user", id)
	}
	if n := srv.UserInfoCalls(); n != 0 {
		t.Errorf("userinfo called %d times although discovery has none", n)
	}
}

func TestOIDCUserIDField(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	c := srv.OIDCConfig(callback)
	c.UserIDField = "email"
	_, id := mustLogin(t, srv, newProvider(t, c))
	if id.Subject != upstreamtest.DefaultUser.Email {
		t.Errorf("Subject = %q, want the email claim", id.Subject)
	}
}

func TestOIDCUnverifiedEmailIsNotTheIdentity(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{User: &upstreamtest.User{
		Subject: "mallory", Email: "ceo@example.com", EmailUnverified: true,
	}})
	_, id := mustLogin(t, srv, newProvider(t, srv.OIDCConfig(callback)))
	if id.Email != "" || id.Claims["email"] != "ceo@example.com" {
		t.Errorf("Email = %q (claims %v), want it only in Claims", id.Email, id.Claims)
	}
}

func TestOIDCRejectsBadIDTokens(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(map[string]any)
		rogue  bool
		nonce  string // used at Exchange instead of the one sent
		want   string
	}{
		{name: "wrong audience", mutate: func(c map[string]any) { c["aud"] = "someone-else" }, want: "audience"},
		{name: "expired", mutate: func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }, want: "expired"},
		{name: "wrong issuer", mutate: func(c map[string]any) { c["iss"] = "https://evil.example.com" }, want: "issued by a different provider"},
		{name: "nonce replaced", mutate: func(c map[string]any) { c["nonce"] = "attacker" }, want: "nonce"},
		{name: "nonce missing", mutate: func(c map[string]any) { delete(c, "nonce") }, want: "nonce"},
		{name: "nonce of another flow", nonce: "another-flow", want: "nonce"},
		{name: "access token hash mismatch", mutate: func(c map[string]any) { c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" }, want: "access token hash"},
		{name: "signed by an unknown key", rogue: true, want: "signature"},
		{name: "userinfo is about someone else", mutate: func(c map[string]any) { c["sub"] = "other" }, want: "does not match the id token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstreamtest.NewServer(t, upstreamtest.Options{})
			p := newProvider(t, srv.OIDCConfig(callback))
			srv.MutateIDToken(tt.mutate)
			srv.SignWithUnknownKey(tt.rogue)
			ap := upstream.NewAuthParams()
			code := srv.Authorize(t, p.AuthCodeURL("s", ap)).Query().Get("code")
			if tt.nonce != "" {
				ap.Nonce = tt.nonce
			}
			_, _, err := p.Exchange(context.Background(), code, ap)
			wantIs(t, err, upstream.ErrIdentity)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestOIDCRequiresAnIDToken(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"at","token_type":"Bearer","expires_in":60}`))
	}))
	defer plain.Close()
	c := srv.OIDCConfig(callback)
	c.TokenURL = plain.URL // the override wins over the discovered endpoint
	_, _, err := login(t, srv, newProvider(t, c))
	wantIs(t, err, upstream.ErrIdentity)
	if !strings.Contains(err.Error(), "no id_token") {
		t.Errorf("error = %v, want it to say the id_token is missing", err)
	}
	if n := srv.Exchanges(); n != 0 {
		t.Errorf("the discovered token endpoint was used %d times despite the override", n)
	}
}

func TestOIDCTokenAuthMethodFromDiscovery(t *testing.T) {
	for _, method := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(method, func(t *testing.T) {
			srv := upstreamtest.NewServer(t, upstreamtest.Options{AuthMethods: []string{method}})
			p := newProvider(t, srv.OIDCConfig(callback))
			mustLogin(t, srv, p)
			// Probing would have cost a refused request first for the post-only server.
			if n := srv.Exchanges(); n != 1 {
				t.Errorf("%d token requests, want exactly 1", n)
			}
		})
	}
}

func TestOIDCRefresh(t *testing.T) {
	ctx := context.Background()
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	p := newProvider(t, srv.OIDCConfig(callback))
	first, _ := mustLogin(t, srv, p)
	second, err := p.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.IDToken == "" {
		t.Errorf("refreshed token = %+v, want a rotated refresh token and a new ID token", second)
	}
	_, err = p.Refresh(ctx, first.RefreshToken)
	wantIs(t, err, upstream.ErrNoRefresh)
}

func TestOIDCDiscoveryFailure(t *testing.T) {
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	_, err := upstream.New(context.Background(), upstream.Config{
		Type: upstream.TypeOIDC, ClientID: "c", ClientSecret: "s", RedirectURL: callback,
		IssuerURL: notFound.URL, HTTPClient: notFound.Client(),
	})
	want := "oidc discovery for " + notFound.URL + ": 404"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("New() error = %v, want it to start with %q", err, want)
	}

	// An issuer that names itself differently is refused (the ID tokens would be too).
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	c := srv.OIDCConfig(callback)
	c.IssuerURL = srv.Issuer + "/"
	_, err = upstream.New(context.Background(), c)
	if err == nil || !strings.HasPrefix(err.Error(), "oidc discovery for "+c.IssuerURL+": ") ||
		!strings.Contains(err.Error(), "did not match") {
		t.Fatalf("New() error = %v, want an issuer mismatch", err)
	}
}

func TestOIDCDiscoveryRespectsContext(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := upstream.New(ctx, srv.OIDCConfig(callback)); err == nil {
		t.Fatal("New() with a cancelled context succeeded")
	}
	if n := srv.Discoveries(); n != 0 {
		t.Errorf("discovery fetched %d times with a cancelled context", n)
	}
}

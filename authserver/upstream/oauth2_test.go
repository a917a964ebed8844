package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

func TestOAuth2AuthCodeURL(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	c := srv.OAuth2Config(callback)
	c.Scopes = []string{"read", "write"}
	p := newProvider(t, c)

	if p.Name() != "oauth2" || !p.SupportsPKCE() {
		t.Fatalf("Name() = %q, SupportsPKCE() = %v; want oauth2 with PKCE", p.Name(), p.SupportsPKCE())
	}
	ap := upstream.NewAuthParams()
	authURL := p.AuthCodeURL("the-state", ap)
	if !strings.HasPrefix(authURL, srv.AuthorizeURL+"?") {
		t.Errorf("AuthCodeURL() = %s, want the configured authorization endpoint", authURL)
	}
	q := query(t, authURL)
	for k, want := range map[string]string{
		"state":                 "the-state",
		"client_id":             srv.ClientID,
		"redirect_uri":          callback,
		"response_type":         "code",
		"scope":                 "read write",
		"code_challenge":        s256(ap.Verifier),
		"code_challenge_method": "S256",
	} {
		if got := q.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if q.Has("nonce") {
		t.Error("a plain OAuth 2.0 request carries a nonce")
	}
}

func TestOAuth2PKCENever(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	c := srv.OAuth2Config(callback)
	c.PKCE = upstream.PKCENever
	p := newProvider(t, c)
	if p.SupportsPKCE() {
		t.Error("SupportsPKCE() = true with PKCENever")
	}
	if q := query(t, p.AuthCodeURL("s", upstream.NewAuthParams())); q.Has("code_challenge") {
		t.Error("challenge sent with PKCENever")
	}
	// The fake refuses a verifier without a challenge, so this also proves none is sent.
	mustLogin(t, srv, p)
}

func TestOAuth2ExchangeReadsUserInfo(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{User: &upstreamtest.User{
		Subject: "ignored",
		Email:   "ada@example.com",
		Claims: map[string]any{
			"id":    int64(4242),
			"login": "ada",
			"data":  map[string]any{"org": map[string]any{"id": 7}},
		},
	}})
	c := srv.OAuth2Config(callback)
	c.UserIDField = "id"
	c.NameField = "login"
	c.GroupsField = "data.org.id" // not a list: no groups, but no failure either
	p := newProvider(t, c)

	before := time.Now()
	tok, id := mustLogin(t, srv, p)
	if id.Subject != "4242" || id.Name != "ada" || id.Email != "ada@example.com" || id.Groups != nil {
		t.Errorf("identity = %+v", id)
	}
	if id.Claims["login"] != "ada" {
		t.Errorf("Claims = %v, want all user-info claims", id.Claims)
	}
	if !srv.ValidAccessToken(tok.AccessToken) || tok.RefreshToken == "" || tok.TokenType != "Bearer" {
		t.Errorf("token = %+v", tok)
	}
	if tok.Expiry.Before(before.Add(59*time.Minute)) || tok.Expiry.After(time.Now().Add(time.Hour+time.Second)) {
		t.Errorf("Expiry = %v, want about an hour from now", tok.Expiry)
	}
	if n := srv.UserInfoCalls(); n != 1 {
		t.Errorf("user info called %d times, want 1", n)
	}
}

func TestOAuth2DottedUserIDField(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{User: &upstreamtest.User{
		Claims: map[string]any{"data": map[string]any{"id": 99, "name": "Nested"}},
	}})
	c := srv.OAuth2Config(callback)
	c.UserIDField, c.NameField = "data.id", "data.name"
	_, id := mustLogin(t, srv, newProvider(t, c))
	if id.Subject != "99" || id.Name != "Nested" {
		t.Errorf("identity = %+v, want subject 99 named Nested", id)
	}
}

func TestOAuth2ExchangeErrors(t *testing.T) {
	ctx := context.Background()
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	p := newProvider(t, srv.OAuth2Config(callback))

	t.Run("an unknown code is invalid_grant", func(t *testing.T) {
		_, _, err := p.Exchange(ctx, "no-such-code", upstream.NewAuthParams())
		wantIs(t, err, upstream.ErrExchange)
		wantCode(t, err, "invalid_grant")
	})
	t.Run("a wrong PKCE verifier is refused", func(t *testing.T) {
		ap := upstream.NewAuthParams()
		code := srv.Authorize(t, p.AuthCodeURL("s", ap)).Query().Get("code")
		_, _, err := p.Exchange(ctx, code, upstream.NewAuthParams())
		wantIs(t, err, upstream.ErrExchange)
		wantCode(t, err, "invalid_grant")
	})
	t.Run("a used code is refused", func(t *testing.T) {
		ap := upstream.NewAuthParams()
		code := srv.Authorize(t, p.AuthCodeURL("s", ap)).Query().Get("code")
		if _, _, err := p.Exchange(ctx, code, ap); err != nil {
			t.Fatal(err)
		}
		_, _, err := p.Exchange(ctx, code, ap)
		wantIs(t, err, upstream.ErrExchange)
	})
	t.Run("wrong client credentials", func(t *testing.T) {
		c := srv.OAuth2Config(callback)
		c.ClientSecret = "wrong"
		bad := newProvider(t, c)
		ap := upstream.NewAuthParams()
		code := srv.Authorize(t, bad.AuthCodeURL("s", ap)).Query().Get("code")
		_, _, err := bad.Exchange(ctx, code, ap)
		wantIs(t, err, upstream.ErrExchange)
		wantCode(t, err, "invalid_client")
	})
	t.Run("a user id field the user info lacks is ErrIdentity", func(t *testing.T) {
		c := srv.OAuth2Config(callback)
		c.UserIDField = "id"
		_, _, err := login(t, srv, newProvider(t, c))
		wantIs(t, err, upstream.ErrIdentity)
		if !strings.Contains(err.Error(), `no "id" claim`) {
			t.Errorf("error = %v, want it to name the missing claim", err)
		}
	})
	t.Run("a cancelled context stops the exchange", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err := p.Exchange(cctx, "code", upstream.NewAuthParams())
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	})
}

func TestOAuth2UserInfoFailureIsErrIdentity(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusBadGateway)
	}))
	defer broken.Close()
	c := srv.OAuth2Config(callback)
	c.UserInfoURL = broken.URL
	_, _, err := login(t, srv, newProvider(t, c))
	wantIs(t, err, upstream.ErrIdentity)
	if !strings.Contains(err.Error(), "502") {
		t.Errorf("error = %v, want the status", err)
	}
}

func TestOAuth2Refresh(t *testing.T) {
	ctx := context.Background()
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	p := newProvider(t, srv.OAuth2Config(callback))
	first, _ := mustLogin(t, srv, p)

	second, err := p.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if second.AccessToken == first.AccessToken || !srv.ValidAccessToken(second.AccessToken) {
		t.Errorf("refresh gave access token %q, want a new live one", second.AccessToken)
	}
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Errorf("refresh token %q, want the rotated one", second.RefreshToken)
	}
	if second.Expiry.IsZero() {
		t.Error("refreshed token has no expiry")
	}

	_, err = p.Refresh(ctx, first.RefreshToken)
	wantIs(t, err, upstream.ErrNoRefresh)
	wantCode(t, err, "invalid_grant")

	srv.RevokeRefreshTokens()
	_, err = p.Refresh(ctx, second.RefreshToken)
	wantIs(t, err, upstream.ErrNoRefresh)
	if n := srv.Refreshes(); n != 3 {
		t.Errorf("upstream saw %d refreshes, want 3", n)
	}

	_, err = p.Refresh(ctx, "")
	wantIs(t, err, upstream.ErrNoRefresh)
	if n := srv.Refreshes(); n != 3 {
		t.Errorf("an empty refresh token reached the upstream")
	}
}

func TestOAuth2RefreshKeepsAnUnrotatedToken(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{KeepRefreshTokens: true})
	p := newProvider(t, srv.OAuth2Config(callback))
	first, _ := mustLogin(t, srv, p)
	for range 2 {
		tok, err := p.Refresh(context.Background(), first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken != first.RefreshToken {
			t.Fatalf("refresh token %q, want the unrotated %q kept", tok.RefreshToken, first.RefreshToken)
		}
	}
}

func TestOAuth2RefreshTransientFailureIsNotErrNoRefresh(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"temporarily_unavailable"}`))
	}))
	defer down.Close()
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	c := srv.OAuth2Config(callback)
	c.TokenURL = down.URL
	_, err := newProvider(t, c).Refresh(context.Background(), "rt")
	if err == nil || errors.Is(err, upstream.ErrNoRefresh) {
		t.Fatalf("Refresh error = %v, want a retryable error, not ErrNoRefresh", err)
	}
}

func TestHTTPClientIsUsed(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	rt := &recordingTransport{}
	c := srv.OAuth2Config(callback)
	c.HTTPClient = &http.Client{Transport: rt}
	_, _, err := login(t, srv, newProvider(t, c))
	wantIs(t, err, upstream.ErrExchange)
	if got := rt.requested(); len(got) == 0 || !strings.HasPrefix(got[0], srv.TokenURL) {
		t.Errorf("requests through the configured client: %v, want the token endpoint", got)
	}
}

// An incremental authorization asks for only the scopes it is given; an OIDC
// provider keeps openid, without which no ID token says who the user is.
func TestAuthCodeURLWithScopes(t *testing.T) {
	srv := upstreamtest.NewServer(t, upstreamtest.Options{})
	for _, tt := range []struct {
		name   string
		cfg    upstream.Config
		scopes []string
		want   string
	}{
		{"oauth2 default scopes", withScopes(srv.OAuth2Config("http://127.0.0.1/cb"), "read:user"), nil, "read:user"},
		{"oauth2 asks for only the given scopes", withScopes(srv.OAuth2Config("http://127.0.0.1/cb"), "read:user"), []string{"repo"}, "repo"},
		{"oidc adds openid to the given scopes", srv.OIDCConfig("http://127.0.0.1/cb"), []string{"repo"}, "openid repo"},
		{"oidc keeps openid where it is", srv.OIDCConfig("http://127.0.0.1/cb"), []string{"repo", "openid"}, "repo openid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := upstream.New(context.Background(), tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(p.AuthCodeURL("st", upstream.AuthParams{Scopes: tt.scopes}))
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Query().Get("scope"); got != tt.want {
				t.Errorf("scope %q, want %q", got, tt.want)
			}
			if s, ok := p.(upstream.Scoper); !ok || len(s.Scopes()) == 0 {
				t.Errorf("the provider does not say its default scopes")
			}
		})
	}
}

func withScopes(c upstream.Config, scopes ...string) upstream.Config {
	c.Scopes = scopes
	return c
}

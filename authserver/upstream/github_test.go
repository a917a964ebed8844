package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/upstream"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
)

// githubLogin runs a whole login against the fake GitHub.
func githubLogin(t *testing.T, gh *upstreamtest.GitHub, c upstream.Config) (upstream.Provider, *upstream.Token, *upstream.Identity) {
	t.Helper()
	p := newProvider(t, c)
	ap := upstream.NewAuthParams()
	client := *gh.Config(callback).HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(p.AuthCodeURL("s", ap))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("authorize: %s, %v", resp.Status, err)
	}
	tok, id, err := p.Exchange(context.Background(), loc.Query().Get("code"), ap)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return p, tok, id
}

func TestGitHubMembershipsReadsOrganizationsAndTeamsAcrossPages(t *testing.T) {
	var teams []string
	for i := range 150 { // two pages of 100
		teams = append(teams, fmt.Sprintf("Acme/team-%03d", i))
	}
	gh := upstreamtest.NewGitHub(t, upstreamtest.GitHubUser{ID: 42, Login: "octocat", Email: "octo@example.com",
		Orgs: []string{"Acme", "other"}, Teams: teams})
	p, tok, id := githubLogin(t, gh, gh.Config(callback))
	if id.Subject != "42" || id.Claims["login"] != "octocat" {
		t.Fatalf("identity %+v", id)
	}
	mr, ok := p.(upstream.MembershipReader)
	if !ok {
		t.Fatal("the github provider is not a MembershipReader")
	}
	if mr.MembershipScope() != "read:org" {
		t.Errorf("MembershipScope = %q", mr.MembershipScope())
	}
	m, err := mr.Memberships(t.Context(), tok.AccessToken, upstream.MembershipQuery{Organizations: true, Teams: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Organizations, []string{"acme", "other"}) {
		t.Errorf("organizations %v", m.Organizations)
	}
	if len(m.Teams) != 150 || m.Teams[0] != "acme/team-000" || m.Teams[149] != "acme/team-149" {
		t.Errorf("%d teams, first %q", len(m.Teams), m.Teams[0])
	}
	if gh.TeamCalls() != 2 || gh.OrgCalls() != 1 {
		t.Errorf("team calls %d, org calls %d; want 2 pages and 1", gh.TeamCalls(), gh.OrgCalls())
	}

	// Only what is asked for is read.
	if _, err := mr.Memberships(t.Context(), tok.AccessToken, upstream.MembershipQuery{Organizations: true}); err != nil {
		t.Fatal(err)
	}
	if gh.TeamCalls() != 2 || gh.OrgCalls() != 2 {
		t.Errorf("team calls %d, org calls %d after an organizations-only query", gh.TeamCalls(), gh.OrgCalls())
	}
}

func TestGitHubMembershipsFailClosed(t *testing.T) {
	gh := upstreamtest.NewGitHub(t, upstreamtest.GitHubUser{ID: 1, Login: "u", Orgs: []string{"acme"}, Teams: []string{"acme/a"}})
	p, tok, _ := githubLogin(t, gh, gh.Config(callback))
	mr := p.(upstream.MembershipReader)
	q := upstream.MembershipQuery{Organizations: true, Teams: true}

	tests := []struct {
		name      string
		status    int
		header    http.Header
		temporary bool
	}{
		{"server error", http.StatusBadGateway, nil, true},
		{"rate limit spent", http.StatusForbidden, http.Header{"X-Ratelimit-Remaining": {"0"}}, true},
		{"secondary rate limit", http.StatusForbidden, http.Header{"Retry-After": {"60"}}, true},
		{"too many requests", http.StatusTooManyRequests, nil, true},
		{"forbidden", http.StatusForbidden, nil, false},
		{"bad credentials", http.StatusUnauthorized, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gh.FailMemberships(tt.status, tt.header)
			defer gh.FailMemberships(0, nil)
			m, err := mr.Memberships(t.Context(), tok.AccessToken, q)
			if err == nil || m != nil {
				t.Fatalf("Memberships = %+v, %v; want an error", m, err)
			}
			if !errors.Is(err, upstream.ErrMembership) || errors.Is(err, upstream.ErrUnavailable) != tt.temporary {
				t.Errorf("error %v: ErrMembership %v, ErrUnavailable %v (want %v)", err,
					errors.Is(err, upstream.ErrMembership), errors.Is(err, upstream.ErrUnavailable), tt.temporary)
			}
		})
	}

	t.Run("unreachable API", func(t *testing.T) {
		c := gh.Config(callback)
		c.APIURL = "http://127.0.0.1:1"
		c.UserInfoURL = gh.URL + upstreamtest.GitHubPathUser
		down := newProvider(t, c).(upstream.MembershipReader)
		_, err := down.Memberships(t.Context(), tok.AccessToken, q)
		if !errors.Is(err, upstream.ErrUnavailable) {
			t.Fatalf("error %v, want ErrUnavailable", err)
		}
	})

	t.Run("token without read:org", func(t *testing.T) {
		c := gh.Config(callback)
		c.Scopes = []string{"read:user", "user:email"}
		p, tok, _ := githubLogin(t, gh, c)
		_, err := p.(upstream.MembershipReader).Memberships(t.Context(), tok.AccessToken, upstream.MembershipQuery{Teams: true})
		if !errors.Is(err, upstream.ErrMembership) || errors.Is(err, upstream.ErrUnavailable) {
			t.Fatalf("error %v, want a permanent ErrMembership", err)
		}
	})
}

func TestGitHubAPIURLMovesTheUserEndpoint(t *testing.T) {
	gh := upstreamtest.NewGitHub(t, upstreamtest.GitHubUser{ID: 7, Login: "ghe-user"})
	c := gh.Config(callback)
	// Only APIURL names the API host: /user must be read there too.
	_, _, id := githubLogin(t, gh, c)
	if id.Subject != "7" {
		t.Fatalf("identity %+v", id)
	}

	for _, typ := range []upstream.Type{upstream.TypeOIDC, upstream.TypeOAuth2, upstream.TypeGoogle} {
		bad := upstream.Config{Type: typ, ClientID: "c", ClientSecret: "s", RedirectURL: callback,
			IssuerURL: "https://idp.example.com", AuthorizationURL: "https://idp.example.com/a",
			TokenURL: "https://idp.example.com/t", UserInfoURL: "https://idp.example.com/u",
			UserIDField: "sub", APIURL: "https://api.example.com"}
		if typ == upstream.TypeOAuth2 {
			bad.IssuerURL = ""
		}
		err := bad.Validate()
		var fe *upstream.FieldError
		if !errors.As(err, &fe) || fe.Field != "APIURL" {
			t.Errorf("%s with APIURL: %v, want an APIURL FieldError", typ, err)
		}
	}
}

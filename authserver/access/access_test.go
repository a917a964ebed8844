package access

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// memberships is what a provider's MembershipReader would answer, counting calls.
type memberships struct {
	m     upstream.Memberships
	err   error
	calls int
	last  upstream.MembershipQuery
}

func (f *memberships) read(_ context.Context, q upstream.MembershipQuery) (*upstream.Memberships, error) {
	f.calls++
	f.last = q
	if f.err != nil {
		return nil, f.err
	}
	return &f.m, nil
}

func TestDecideWhoMayLogIn(t *testing.T) {
	githubUser := &upstream.Identity{Subject: "583231", Email: "Octo@Example.com",
		Claims: map[string]any{"id": "583231", "login": "Octocat"}}
	verifiedUser := &upstream.Identity{Subject: "u-1", Email: "alice@example.com",
		Claims: map[string]any{"email_verified": true}}
	unverifiedUser := &upstream.Identity{Subject: "u-2", Email: "mallory@example.com",
		Claims: map[string]any{}} // no email_verified: not trusted for a rule
	workspaceUser := &upstream.Identity{Subject: "g-1", Email: "bob@corp.example",
		Claims: map[string]any{"email_verified": true, "hd": "Corp.Example"}}
	groupUser := &upstream.Identity{Subject: "o-1", Groups: []string{"engineering", "mcp-users"}, Claims: map[string]any{}}

	tests := []struct {
		name     string
		provider upstream.Type
		allow    config.AccessRules
		id       *upstream.Identity
		orgs     []string
		teams    []string
		want     string // the rule; "" refused
	}{
		{"no rules let everyone in", upstream.TypeOIDC, config.AccessRules{}, unverifiedUser, nil, nil, "everyone"},
		{"user by id", upstream.TypeGitHub, config.AccessRules{Users: []string{"583231"}}, githubUser, nil, nil, "users: 583231"},
		{"user by GitHub login, without case", upstream.TypeGitHub, config.AccessRules{Users: []string{"octocat"}}, githubUser, nil, nil, "users: octocat"},
		{"a login claim means nothing outside GitHub", upstream.TypeOIDC, config.AccessRules{Users: []string{"octocat"}},
			&upstream.Identity{Subject: "x", Claims: map[string]any{"login": "octocat"}}, nil, nil, ""},
		{"someone else's id", upstream.TypeOIDC, config.AccessRules{Users: []string{"u-9"}}, verifiedUser, nil, nil, ""},
		{"verified e-mail", upstream.TypeOIDC, config.AccessRules{Emails: []string{"ALICE@example.com"}}, verifiedUser, nil, nil, "emails: alice@example.com"},
		{"unverified e-mail", upstream.TypeOIDC, config.AccessRules{Emails: []string{"mallory@example.com"}}, unverifiedUser, nil, nil, ""},
		{"GitHub addresses are verified", upstream.TypeGitHub, config.AccessRules{EmailDomains: []string{"example.com"}}, githubUser, nil, nil, "emailDomains: example.com"},
		{"e-mail domain", upstream.TypeOIDC, config.AccessRules{EmailDomains: []string{"Example.com"}}, verifiedUser, nil, nil, "emailDomains: example.com"},
		{"e-mail domain is not a suffix match", upstream.TypeOIDC, config.AccessRules{EmailDomains: []string{"ample.com"}}, verifiedUser, nil, nil, ""},
		{"unverified domain", upstream.TypeOIDC, config.AccessRules{EmailDomains: []string{"example.com"}}, unverifiedUser, nil, nil, ""},
		{"hosted domain", upstream.TypeGoogle, config.AccessRules{GoogleHostedDomains: []string{"corp.example"}}, workspaceUser, nil, nil, "googleHostedDomains: corp.example"},
		{"hosted domain of another workspace", upstream.TypeGoogle, config.AccessRules{GoogleHostedDomains: []string{"other.example"}}, workspaceUser, nil, nil, ""},
		{"a personal Google account has no hd", upstream.TypeGoogle, config.AccessRules{GoogleHostedDomains: []string{"example.com"}}, verifiedUser, nil, nil, ""},
		{"group", upstream.TypeOIDC, config.AccessRules{Groups: []string{"mcp-users"}}, groupUser, nil, nil, "groups: mcp-users"},
		{"groups compare exactly", upstream.TypeOIDC, config.AccessRules{Groups: []string{"MCP-Users"}}, groupUser, nil, nil, ""},
		{"GitHub organization", upstream.TypeGitHub, config.AccessRules{GitHubOrganizations: []string{"Acme"}}, githubUser, []string{"other", "acme"}, nil, "githubOrganizations: acme"},
		{"not in the organization", upstream.TypeGitHub, config.AccessRules{GitHubOrganizations: []string{"acme"}}, githubUser, []string{"acme-fan-club"}, nil, ""},
		{"GitHub team", upstream.TypeGitHub, config.AccessRules{GitHubTeams: []string{"acme/Platform"}}, githubUser, nil, []string{"acme/platform"}, "githubTeams: acme/platform"},
		{"same slug in another organization", upstream.TypeGitHub, config.AccessRules{GitHubTeams: []string{"acme/platform"}}, githubUser, nil, []string{"evil/platform"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(config.Access{Allow: tt.allow}, tt.provider)
			f := &memberships{m: upstream.Memberships{Organizations: tt.orgs, Teams: tt.teams}}
			d, err := p.Decide(t.Context(), Input{Identity: tt.id, Memberships: f.read})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != (tt.want != "") || d.Rule != tt.want {
				t.Errorf("Decide = %+v, want rule %q", d, tt.want)
			}
		})
	}
}

func TestNilPolicyLetsEveryoneIn(t *testing.T) {
	var p *Policy
	d, err := p.Decide(t.Context(), Input{})
	if err != nil || !d.Allowed {
		t.Fatalf("Decide = %+v, %v", d, err)
	}
	if got := p.GrantedScopes([]string{"a", "b"}, d); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("GrantedScopes = %v", got)
	}
}

func TestMembershipsAreReadOnlyWhenNeededAndOnce(t *testing.T) {
	id := &upstream.Identity{Subject: "1", Claims: map[string]any{"login": "octocat"}}
	a := config.Access{
		Allow: config.AccessRules{Users: []string{"1"}, GitHubOrganizations: []string{"acme"}},
		ScopeMappings: []config.ScopeMapping{
			{Scopes: []string{"tools:write"}, Members: config.AccessRules{GitHubOrganizations: []string{"acme"}}},
			{Scopes: []string{"tools:admin"}, Members: config.AccessRules{GitHubTeams: []string{"acme/admins"}}},
		},
	}
	f := &memberships{m: upstream.Memberships{Organizations: []string{"acme"}, Teams: []string{"acme/admins"}}}
	d, err := New(a, upstream.TypeGitHub).Decide(t.Context(), Input{Identity: id, Memberships: f.read})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allowed || d.Rule != "users: 1" || !slices.Equal(d.Scopes, []string{"tools:write", "tools:admin"}) {
		t.Errorf("Decide = %+v", d)
	}
	if f.calls != 1 || !f.last.Organizations || !f.last.Teams {
		t.Errorf("memberships read %d times with %+v; want once, both", f.calls, f.last)
	}

	// Let in by id and no mapping: no API call at all.
	f = &memberships{}
	onlyAllow := config.Access{Allow: a.Allow}
	if d, err := New(onlyAllow, upstream.TypeGitHub).Decide(t.Context(), Input{Identity: id, Memberships: f.read}); err != nil || !d.Allowed {
		t.Fatalf("Decide = %+v, %v", d, err)
	}
	if f.calls != 0 {
		t.Errorf("memberships read %d times for a user let in by id", f.calls)
	}
}

func TestMembershipFailuresFailClosed(t *testing.T) {
	id := &upstream.Identity{Subject: "1", Claims: map[string]any{}}
	cause := fmt.Errorf("%w: github /user/orgs: 502", upstream.ErrUnavailable)
	tests := []struct {
		name string
		a    config.Access
		in   Input
	}{
		{"login rule", config.Access{Allow: config.AccessRules{GitHubOrganizations: []string{"acme"}}},
			Input{Identity: id, Memberships: (&memberships{err: cause}).read}},
		{"scope mapping", config.Access{ScopeMappings: []config.ScopeMapping{{Scopes: []string{"x"}, Members: config.AccessRules{GitHubTeams: []string{"acme/a"}}}}},
			Input{Identity: id, Memberships: (&memberships{err: cause}).read}},
		{"a provider that cannot read memberships", config.Access{Allow: config.AccessRules{GitHubOrganizations: []string{"acme"}}},
			Input{Identity: id}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(tt.a, upstream.TypeGitHub).Decide(t.Context(), tt.in)
			if err == nil || d.Allowed {
				t.Fatalf("Decide = %+v, %v; want an error and no admission", d, err)
			}
			if !errors.Is(err, ErrMemberships) {
				t.Errorf("error %v does not wrap ErrMemberships", err)
			}
			if tt.in.Memberships != nil && !errors.Is(err, upstream.ErrUnavailable) {
				t.Errorf("error %v lost its cause", err)
			}
		})
	}
}

func TestGrantedScopesKeepUnrestrictedAndGrantedOnes(t *testing.T) {
	p := New(config.Access{ScopeMappings: []config.ScopeMapping{
		{Scopes: []string{"tools:admin"}, Members: config.AccessRules{Groups: []string{"team-admins"}}},
		{Scopes: []string{"tools:write"}, Members: config.AccessRules{Groups: []string{"devs"}}},
	}}, upstream.TypeOIDC)
	admin := &upstream.Identity{Subject: "a", Groups: []string{"team-admins"}}
	d, err := p.Decide(t.Context(), Input{Identity: admin})
	if err != nil || !d.Allowed {
		t.Fatalf("Decide = %+v, %v (mappings alone restrict no login)", d, err)
	}
	requested := []string{"mcp", "tools:write", "tools:admin"}
	if got := p.GrantedScopes(requested, d); !slices.Equal(got, []string{"mcp", "tools:admin"}) {
		t.Errorf("admin gets %v", got)
	}
	nobody, _ := p.Decide(t.Context(), Input{Identity: &upstream.Identity{Subject: "n"}})
	if got := p.GrantedScopes(requested, nobody); !slices.Equal(got, []string{"mcp"}) {
		t.Errorf("a user in no group gets %v", got)
	}
	if !p.Restricted("tools:admin") || p.Restricted("mcp") {
		t.Error("Restricted is wrong")
	}
}

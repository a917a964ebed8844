package config

import (
	"testing"
)

func TestValidateAccessRules(t *testing.T) {
	github := func(c *Config) {
		c.Upstream = Upstream{Type: UpstreamGitHub, ClientID: "gh"}
	}
	google := func(c *Config) {
		c.Upstream = Upstream{Type: UpstreamGoogle, ClientID: "g"}
	}
	scopes := func(c *Config) {
		c.ScopesSupported = []string{"mcp", "tools:write", "tools:admin"}
	}
	tests := []struct {
		name   string
		mutate []func(c *Config)
		want   []string
	}{
		{"no access section lets everyone in", nil, nil},
		{"users, emails and domains work with any upstream", []func(*Config){func(c *Config) {
			c.Access.Allow = AccessRules{Users: []string{"12345", "octocat"}, Emails: []string{"Alice@Example.com"}, EmailDomains: []string{"example.com"}}
		}}, nil},
		{"github organizations and teams with github", []func(*Config){github, func(c *Config) {
			c.Access.Allow = AccessRules{GitHubOrganizations: []string{"acme", "acme-labs"}, GitHubTeams: []string{"acme/platform-team", "acme/sre_oncall"}}
		}}, nil},
		{"groups with oidc and a nested claim", []func(*Config){func(c *Config) {
			c.Access = Access{Allow: AccessRules{Groups: []string{"mcp users"}}, GroupsClaim: "realm_access.roles"}
		}}, nil},
		{"hosted domain with google", []func(*Config){google, func(c *Config) {
			c.Access.Allow.GoogleHostedDomains = []string{"example.com"}
		}}, nil},
		{"a scope mapping to supported scopes", []func(*Config){scopes, func(c *Config) {
			c.Access.ScopeMappings = []ScopeMapping{{Scopes: []string{"tools:admin"}, Members: AccessRules{Groups: []string{"team-admins"}}}}
		}}, nil},

		{"github organization with oidc", []func(*Config){func(c *Config) {
			c.Access.Allow.GitHubOrganizations = []string{"acme"}
		}}, []string{`access.allow.githubOrganizations: not allowed when upstream.type is "oidc": GitHub organizations`}},
		{"github team in a mapping with google", []func(*Config){google, scopes, func(c *Config) {
			c.Access.ScopeMappings = []ScopeMapping{{Scopes: []string{"tools:write"}, Members: AccessRules{GitHubTeams: []string{"acme/dev"}}}}
		}}, []string{`access.scopeMappings[0].members.githubTeams: not allowed when upstream.type is "google"`}},
		{"hosted domain with github", []func(*Config){github, func(c *Config) {
			c.Access.Allow.GoogleHostedDomains = []string{"example.com"}
		}}, []string{`access.allow.googleHostedDomains: not allowed when upstream.type is "github": the hd claim is Google's`}},
		{"groups with github", []func(*Config){github, func(c *Config) {
			c.Access.Allow.Groups = []string{"admins"}
		}}, []string{`access.allow.groups: not allowed when upstream.type is "github": this provider sends no groups claim`}},
		{"team without organization", []func(*Config){github, func(c *Config) {
			c.Access.Allow.GitHubTeams = []string{"platform"}
		}}, []string{`access.allow.githubTeams[0]: "platform": write a team as organization/team-slug`}},
		{"organization with a bad login", []func(*Config){github, func(c *Config) {
			c.Access.Allow.GitHubOrganizations = []string{"-acme", "acme--x", "https://github.com/acme"}
		}}, []string{
			`access.allow.githubOrganizations[0]: "-acme" is not a GitHub organization login`,
			`access.allow.githubOrganizations[1]: "acme--x" is not a GitHub organization login`,
			`access.allow.githubOrganizations[2]: "https://github.com/acme" is not a GitHub organization login`,
		}},
		{"duplicates compared without case", []func(*Config){github, func(c *Config) {
			c.Access.Allow.GitHubOrganizations = []string{"Acme", "acme"}
			c.Access.Allow.Emails = []string{"a@example.com", "A@EXAMPLE.COM"}
		}}, []string{`access.allow.githubOrganizations[1]: duplicate "acme"`, `access.allow.emails[1]: duplicate "A@EXAMPLE.COM"`}},
		{"malformed e-mail addresses", []func(*Config){func(c *Config) {
			c.Access.Allow.Emails = []string{"alice", "alice@", "a@b@c.com", "alice@localhost", "al ice@example.com"}
		}}, []string{
			`access.allow.emails[0]: "alice" is not an e-mail address`,
			`access.allow.emails[1]: "alice@" is not an e-mail address`,
			`access.allow.emails[2]: "a@b@c.com" is not an e-mail address`,
			`access.allow.emails[3]: "alice@localhost": "localhost" is not a domain name`,
			`access.allow.emails[4]: "al ice@example.com" is not an e-mail address`,
		}},
		{"malformed domains", []func(*Config){func(c *Config) {
			c.Access.Allow.EmailDomains = []string{"*.example.com", "@example.com", "example", "exa_mple.com", ""}
		}}, []string{
			`access.allow.emailDomains[0]: "*.example.com": wildcards are not supported`,
			`access.allow.emailDomains[1]: "@example.com": write the domain without @`,
			`access.allow.emailDomains[2]: "example" is not a domain name`,
			`access.allow.emailDomains[3]: "exa_mple.com" is not a domain name`,
			`access.allow.emailDomains[4]: "" is not a domain name`,
		}},
		{"empty user and user with spaces", []func(*Config){func(c *Config) {
			c.Access.Allow.Users = []string{"", "alice smith"}
		}}, []string{`access.allow.users[0]: empty user`, `access.allow.users[1]: "alice smith" contains spaces`}},
		{"empty group", []func(*Config){func(c *Config) {
			c.Access.Allow.Groups = []string{""}
		}}, []string{`access.allow.groups[0]: empty group`}},
		{"groups claim without a groups rule", []func(*Config){func(c *Config) {
			c.Access.GroupsClaim = "roles"
		}}, []string{`access.groupsClaim: set, but no rule names groups`}},
		{"groups claim with an empty segment", []func(*Config){func(c *Config) {
			c.Access = Access{Allow: AccessRules{Groups: []string{"a"}}, GroupsClaim: "realm_access..roles"}
		}}, []string{`access.groupsClaim: "realm_access..roles" is not a claim name or dotted path`}},
		{"mapped scope not supported", []func(*Config){func(c *Config) {
			c.Access.ScopeMappings = []ScopeMapping{{Scopes: []string{"tools:admin", "mcp", "mcp"}, Members: AccessRules{Users: []string{"alice"}}}}
		}}, []string{`access.scopeMappings[0].scopes[0]: "tools:admin" is not in scopesSupported`, `access.scopeMappings[0].scopes[2]: duplicate scope "mcp"`}},
		{"mapping without scopes or members", []func(*Config){func(c *Config) {
			c.Access.ScopeMappings = []ScopeMapping{{}}
		}}, []string{`access.scopeMappings[0].scopes: required`, `access.scopeMappings[0].members: required`}},
		{"github rules with explicit scopes lacking read:org", []func(*Config){github, func(c *Config) {
			c.Upstream.Scopes = []string{"read:user"}
			c.Access.Allow.GitHubTeams = []string{"acme/dev"}
		}}, []string{`upstream.scopes: must include read:org`}},
		{"github rules with explicit scopes including read:org", []func(*Config){github, func(c *Config) {
			c.Upstream.Scopes = []string{"read:user", "read:org"}
			c.Access.Allow.GitHubOrganizations = []string{"acme"}
		}}, nil},
		{"too many entries", []func(*Config){func(c *Config) {
			c.Access.Allow.Users = make([]string, maxAccessEntries+1)
		}}, []string{`access.allow.users: 1001 entries; at most 1000`}},
		{"api URL with github", []func(*Config){github, func(c *Config) {
			c.Upstream.APIURL = "https://ghe.example.com/api/v3"
		}}, nil},
		{"api URL with oidc", []func(*Config){func(c *Config) {
			c.Upstream.APIURL = "https://api.example.com"
		}}, []string{`upstream.apiURL: not allowed when upstream.type is "oidc" (only github reads memberships from an API)`}},
		{"api URL over http", []func(*Config){github, func(c *Config) {
			c.Upstream.APIURL = "http://ghe.example.com/api/v3"
		}}, []string{`upstream.apiURL: must be https`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			for _, m := range tt.mutate {
				m(c)
			}
			assertProblems(t, c.Validate(), tt.want...)
		})
	}
}

func TestAccessSectionParsesFromYAML(t *testing.T) {
	yaml := `
issuer: https://auth.example.com
scopesSupported: [mcp, tools:admin]
upstream: {type: github, clientID: gh}
access:
  allow:
    githubOrganizations: [acme]
  scopeMappings:
  - scopes: [tools:admin]
    members:
      githubTeams: [acme/platform]
`
	c, err := Parse([]byte(yaml), func(k string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Access.ScopeMappings[0].Members.GitHubTeams; len(got) != 1 || got[0] != "acme/platform" || c.Access.Allow.GitHubOrganizations[0] != "acme" {
		t.Fatalf("access = %+v", c.Access)
	}
	if !c.Access.UsesGitHubMemberships() {
		t.Error("UsesGitHubMemberships = false")
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out, nil)
	if err != nil {
		t.Fatalf("round trip: %v\n%s", err, out)
	}
	if len(again.Access.ScopeMappings) != 1 || again.Access.Allow.GitHubOrganizations[0] != "acme" {
		t.Fatalf("round trip lost access: %+v", again.Access)
	}

	_, err = Parse([]byte(yaml+"  Allow: {users: [x]}\n"), nil)
	assertProblems(t, err, `access.Allow: unknown field (did you mean "allow"?)`)
}

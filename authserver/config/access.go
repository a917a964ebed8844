package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// DefaultGroupsClaim is the claim read for access.allow.groups and the groups of scope
// mappings when access.groupsClaim is empty.
const DefaultGroupsClaim = "groups"

// DefaultGitHubAPIURL is GitHub's REST API, where organization and team memberships
// are read.
const DefaultGitHubAPIURL = "https://api.github.com"

// GitHubMembershipScope is the GitHub OAuth scope that lets the server read the user's
// organizations and teams; the server asks for it when a rule names either.
const GitHubMembershipScope = "read:org"

// Access says who may log in and which scopes membership grants. With no rule in
// Allow, everyone the upstream provider authenticates may log in.
type Access struct {
	// Allow are the login rules: a user must match at least one of them. Empty: everyone.
	Allow AccessRules `json:"allow,omitzero"`
	// GroupsClaim is the ID-token or user-info claim holding the user's groups (a
	// dotted path reaches into nested objects). Default "groups".
	GroupsClaim string `json:"groupsClaim,omitempty"`
	// ScopeMappings grant scopes to users who match their members rules.
	ScopeMappings []ScopeMapping `json:"scopeMappings,omitempty"`
}

// AccessRules match users. A user matches when any one entry of any list matches.
type AccessRules struct {
	// Users are upstream user IDs (the upstream.userIDField value) and, for GitHub,
	// logins.
	Users []string `json:"users,omitempty"`
	// Emails are e-mail addresses the upstream has verified, compared without case.
	Emails []string `json:"emails,omitempty"`
	// EmailDomains match verified addresses in exactly these domains (not subdomains).
	EmailDomains []string `json:"emailDomains,omitempty"`
	// GitHubOrganizations are GitHub organization logins (github only).
	GitHubOrganizations []string `json:"githubOrganizations,omitempty"`
	// GitHubTeams are GitHub teams written organization/team-slug (github only).
	GitHubTeams []string `json:"githubTeams,omitempty"`
	// GoogleHostedDomains are Google Workspace domains, matched against the signed ID
	// token's hd claim (google and oidc only).
	GoogleHostedDomains []string `json:"googleHostedDomains,omitempty"`
	// Groups are values of the groups claim (oidc and oauth2 only).
	Groups []string `json:"groups,omitempty"`
}

// ScopeMapping grants Scopes to the users its Members rules match.
type ScopeMapping struct {
	// Scopes granted; each must be in scopesSupported.
	Scopes []string `json:"scopes"`
	// Members are the users granted the scopes.
	Members AccessRules `json:"members"`
}

// IsZero reports whether r has no rule.
func (r AccessRules) IsZero() bool {
	return len(r.Users) == 0 && len(r.Emails) == 0 && len(r.EmailDomains) == 0 &&
		len(r.GitHubOrganizations) == 0 && len(r.GitHubTeams) == 0 &&
		len(r.GoogleHostedDomains) == 0 && len(r.Groups) == 0
}

// IsZero reports whether a has no rule and no mapping.
func (a Access) IsZero() bool {
	return a.Allow.IsZero() && a.GroupsClaim == "" && len(a.ScopeMappings) == 0
}

// UsesGitHubMemberships reports whether any rule names a GitHub organization or team,
// so that the upstream must be asked for read:org.
func (a Access) UsesGitHubMemberships() bool {
	if len(a.Allow.GitHubOrganizations)+len(a.Allow.GitHubTeams) > 0 {
		return true
	}
	for _, m := range a.ScopeMappings {
		if len(m.Members.GitHubOrganizations)+len(m.Members.GitHubTeams) > 0 {
			return true
		}
	}
	return false
}

func (a Access) usesGroups() bool {
	if len(a.Allow.Groups) > 0 {
		return true
	}
	for _, m := range a.ScopeMappings {
		if len(m.Members.Groups) > 0 {
			return true
		}
	}
	return false
}

// maxAccessEntries bounds each list: the rules are matched on every login, and a list
// longer than this is a directory, which belongs in the upstream provider's groups.
const maxAccessEntries = 1000

// maxScopeMappings bounds access.scopeMappings.
const maxScopeMappings = 100

var (
	// GitHub logins: alphanumerics and single inner hyphens, at most 39.
	githubLogin = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9]|-[A-Za-z0-9]){0,38}$`)
	// Team slugs are what GitHub derives from team names: letters, digits, '-', '_', '.'.
	githubTeamSlug = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
	// A DNS name of at least two labels.
	domainName = regexp.MustCompile(`^(?i)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$`)
)

func (c *Config) validateAccess(v *validator) {
	a := &c.Access
	c.validateAccessRules(v, "access.allow", a.Allow)
	if a.GroupsClaim != "" {
		switch {
		case !a.usesGroups():
			v.addf("access.groupsClaim", "set, but no rule names groups")
		case strings.ContainsFunc(a.GroupsClaim, unicode.IsSpace) || slices.Contains(strings.Split(a.GroupsClaim, "."), ""):
			v.addf("access.groupsClaim", "%q is not a claim name or dotted path", a.GroupsClaim)
		}
	}
	if len(a.ScopeMappings) > maxScopeMappings {
		v.addf("access.scopeMappings", "%d mappings; at most %d", len(a.ScopeMappings), maxScopeMappings)
	}
	for i, m := range a.ScopeMappings {
		f := fmt.Sprintf("access.scopeMappings[%d]", i)
		if len(m.Scopes) == 0 {
			v.addf(f+".scopes", "required: the scopes the members are granted")
		}
		for j, s := range m.Scopes {
			if !slices.Contains(c.ScopesSupported, s) {
				v.addf(fmt.Sprintf("%s.scopes[%d]", f, j), "%q is not in scopesSupported", s)
			} else if slices.Index(m.Scopes, s) != j {
				v.addf(fmt.Sprintf("%s.scopes[%d]", f, j), "duplicate scope %q", s)
			}
		}
		if m.Members.IsZero() {
			v.addf(f+".members", "required: at least one rule saying who is granted the scopes")
		}
		c.validateAccessRules(v, f+".members", m.Members)
	}
	if a.UsesGitHubMemberships() && len(c.Upstream.Scopes) > 0 && !slices.Contains(c.Upstream.Scopes, GitHubMembershipScope) {
		v.addf("upstream.scopes", "must include %s: access rules name GitHub organizations or teams, which GitHub shows only with that scope", GitHubMembershipScope)
	}
}

// validateAccessRules checks one set of rules found at path.
func (c *Config) validateAccessRules(v *validator, path string, r AccessRules) {
	t := c.Upstream.Type
	lists := []struct {
		name    string
		values  []string
		check   func(string) string
		types   []UpstreamType // nil: any type
		typeMsg string
		fold    bool // compared without case, so duplicates are too
	}{
		{"users", r.Users, checkUserEntry, nil, "", false},
		{"emails", r.Emails, checkEmailEntry, nil, "", true},
		{"emailDomains", r.EmailDomains, checkDomainEntry, nil, "", true},
		{"githubOrganizations", r.GitHubOrganizations, checkGitHubOrg, []UpstreamType{UpstreamGitHub},
			"GitHub organizations are checked only when upstream.type is github", true},
		{"githubTeams", r.GitHubTeams, checkGitHubTeam, []UpstreamType{UpstreamGitHub},
			"GitHub teams are checked only when upstream.type is github", true},
		{"googleHostedDomains", r.GoogleHostedDomains, checkDomainEntry, []UpstreamType{UpstreamGoogle, UpstreamOIDC},
			"the hd claim is Google's: use upstream.type google (or oidc with Google's issuer)", true},
		{"groups", r.Groups, checkGroupEntry, []UpstreamType{UpstreamOIDC, UpstreamOAuth2},
			"this provider sends no groups claim: groups need upstream.type oidc or oauth2", false},
	}
	for _, l := range lists {
		f := path + "." + l.name
		if len(l.values) == 0 {
			continue
		}
		if l.types != nil && t != "" && !slices.Contains(l.types, t) {
			v.addf(f, "not allowed when upstream.type is %q: %s", t, l.typeMsg)
			continue
		}
		if len(l.values) > maxAccessEntries {
			v.addf(f, "%d entries; at most %d", len(l.values), maxAccessEntries)
			continue
		}
		seen := map[string]bool{}
		for i, s := range l.values {
			ef := fmt.Sprintf("%s[%d]", f, i)
			key := s
			if l.fold {
				key = strings.ToLower(s)
			}
			if msg := l.check(s); msg != "" {
				v.addf(ef, "%s", msg)
			} else if seen[key] {
				v.addf(ef, "duplicate %q", s)
			}
			seen[key] = true
		}
	}
}

func checkUserEntry(s string) string {
	switch {
	case s == "":
		return "empty user"
	case len(s) > 256:
		return "longer than 256 characters"
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Sprintf("%q contains spaces or control characters", s)
	}
	return ""
}

func checkEmailEntry(s string) string {
	local, domain, ok := strings.Cut(s, "@")
	switch {
	case !ok || local == "" || domain == "" || strings.Contains(domain, "@"):
		return fmt.Sprintf("%q is not an e-mail address (local@domain)", s)
	case len(s) > 254 || strings.ContainsFunc(local, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Sprintf("%q is not an e-mail address", s)
	case !domainName.MatchString(domain):
		return fmt.Sprintf("%q: %q is not a domain name", s, domain)
	}
	return ""
}

func checkDomainEntry(s string) string {
	switch {
	case strings.HasPrefix(s, "*."):
		return fmt.Sprintf("%q: wildcards are not supported; list each domain (subdomains are not matched)", s)
	case strings.Contains(s, "@"):
		return fmt.Sprintf("%q: write the domain without @", s)
	case len(s) > 253 || !domainName.MatchString(s):
		return fmt.Sprintf("%q is not a domain name", s)
	}
	return ""
}

func checkGitHubOrg(s string) string {
	if !githubLogin.MatchString(s) {
		return fmt.Sprintf("%q is not a GitHub organization login (letters, digits and single hyphens, at most 39)", s)
	}
	return ""
}

func checkGitHubTeam(s string) string {
	org, slug, ok := strings.Cut(s, "/")
	switch {
	case !ok:
		return fmt.Sprintf("%q: write a team as organization/team-slug", s)
	case !githubLogin.MatchString(org):
		return fmt.Sprintf("%q: %q is not a GitHub organization login", s, org)
	case !githubTeamSlug.MatchString(slug):
		return fmt.Sprintf("%q: %q is not a team slug (the team's name as it appears in its URL)", s, slug)
	}
	return ""
}

func checkGroupEntry(s string) string {
	switch {
	case s == "":
		return "empty group"
	case len(s) > 256:
		return "longer than 256 characters"
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Sprintf("%q contains control characters", s)
	}
	return ""
}

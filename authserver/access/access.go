// Package access decides, at the end of an upstream login, whether the user may log in
// and which restricted scopes their memberships grant, from the rules of
// config.Access: user IDs and logins, verified e-mail addresses and domains, GitHub
// organizations and teams (read with the user's upstream token), Google hosted domains
// and groups claims.
//
// A nil *Policy, or one without rules, lets everyone in and restricts no scope. The
// server asks a Policy once per login, before it issues or stores anything; every
// failure to read a membership is an error, never a guess, so the caller fails closed.
package access

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// Policy is a compiled config.Access for one upstream provider. Safe for concurrent use.
type Policy struct {
	provider upstream.Type
	allow    ruleSet
	mappings []mapping
	// restricted are the scopes some mapping names: granted only to its members.
	restricted map[string]bool
	query      upstream.MembershipQuery
}

type mapping struct {
	scopes  []string
	members ruleSet
}

// ruleSet is one config.AccessRules with every list a set, keys folded where the
// comparison ignores case.
type ruleSet struct {
	users, logins, emails, domains, orgs, teams, hostedDomains, groups map[string]bool
}

// New compiles a (validated) access section for an upstream provider type.
func New(a config.Access, provider upstream.Type) *Policy {
	p := &Policy{provider: provider, allow: compile(a.Allow), restricted: map[string]bool{}}
	p.need(a.Allow)
	for _, m := range a.ScopeMappings {
		p.mappings = append(p.mappings, mapping{scopes: slices.Clone(m.Scopes), members: compile(m.Members)})
		for _, s := range m.Scopes {
			p.restricted[s] = true
		}
		p.need(m.Members)
	}
	return p
}

func (p *Policy) need(r config.AccessRules) {
	p.query.Organizations = p.query.Organizations || len(r.GitHubOrganizations) > 0
	p.query.Teams = p.query.Teams || len(r.GitHubTeams) > 0
}

func compile(r config.AccessRules) ruleSet {
	set := func(vals []string, fold bool) map[string]bool {
		if len(vals) == 0 {
			return nil
		}
		m := make(map[string]bool, len(vals))
		for _, v := range vals {
			if fold {
				v = strings.ToLower(v)
			}
			m[v] = true
		}
		return m
	}
	return ruleSet{
		// A user entry names an ID exactly, or a GitHub login without case.
		users:         set(r.Users, false),
		logins:        set(r.Users, true),
		emails:        set(r.Emails, true),
		domains:       set(r.EmailDomains, true),
		orgs:          set(r.GitHubOrganizations, true),
		teams:         set(r.GitHubTeams, true),
		hostedDomains: set(r.GoogleHostedDomains, true),
		groups:        set(r.Groups, false),
	}
}

func (r ruleSet) empty() bool {
	return len(r.users)+len(r.emails)+len(r.domains)+len(r.orgs)+len(r.teams)+len(r.hostedDomains)+len(r.groups) == 0
}

func (r ruleSet) needsMemberships() bool { return len(r.orgs)+len(r.teams) > 0 }

// Input is what Decide knows about one login.
type Input struct {
	// Identity is who the upstream says the user is.
	Identity *upstream.Identity
	// Memberships reads the user's organizations and teams with their upstream token;
	// nil when the provider has none to read.
	Memberships func(context.Context, upstream.MembershipQuery) (*upstream.Memberships, error)
}

// Decision is the outcome for one login.
type Decision struct {
	// Allowed says the user may log in.
	Allowed bool
	// Rule names what let the user in ("githubOrganizations: acme"), for the log;
	// "everyone" without rules, empty when refused.
	Rule string
	// Scopes are the restricted scopes the user's memberships grant.
	Scopes []string
}

// ErrMemberships wraps a failure to read the user's memberships; the cause is wrapped
// too (upstream.ErrUnavailable says a later attempt may work).
var ErrMemberships = errors.New("access: cannot read the user's memberships")

// Decide applies the policy to one login. Memberships are read at most once, and only
// when a rule that could still change the outcome needs them.
func (p *Policy) Decide(ctx context.Context, in Input) (Decision, error) {
	if p == nil || (p.allow.empty() && len(p.mappings) == 0) {
		return Decision{Allowed: true, Rule: "everyone"}, nil
	}
	if in.Identity == nil {
		return Decision{}, errors.New("access: no identity")
	}
	u := &user{p: p, in: in}
	u.read()
	d := Decision{Allowed: p.allow.empty(), Rule: "everyone"}
	if !d.Allowed {
		rule, err := u.match(ctx, p.allow)
		if err != nil {
			return Decision{}, err
		}
		if rule == "" {
			return Decision{}, nil
		}
		d = Decision{Allowed: true, Rule: rule}
	}
	for _, m := range p.mappings {
		if !slices.ContainsFunc(m.scopes, func(s string) bool { return !slices.Contains(d.Scopes, s) }) {
			continue // nothing new to grant
		}
		rule, err := u.match(ctx, m.members)
		if err != nil {
			return Decision{}, err
		}
		if rule != "" {
			for _, s := range m.scopes {
				if !slices.Contains(d.Scopes, s) {
					d.Scopes = append(d.Scopes, s)
				}
			}
		}
	}
	return d, nil
}

// Restricted reports whether scope is granted only through a mapping.
func (p *Policy) Restricted(scope string) bool {
	return p != nil && p.restricted[scope]
}

// GrantedScopes returns the scopes of requested that the user gets: every one no
// mapping restricts, and the restricted ones d grants. Order is kept.
func (p *Policy) GrantedScopes(requested []string, d Decision) []string {
	var out []string
	for _, s := range requested {
		if !p.Restricted(s) || slices.Contains(d.Scopes, s) {
			out = append(out, s)
		}
	}
	return out
}

// user is one login's identity as the rules see it.
type user struct {
	p  *Policy
	in Input

	id, login, email, hostedDomain string
	groups                         []string
	memberships                    *upstream.Memberships
}

// read extracts what rules match on. An address counts only when the upstream says
// it verified it; GitHub shows only verified addresses (the public one must be
// verified to be chosen, and /user/emails is read for its verified primary).
func (u *user) read() {
	id := u.in.Identity
	u.id = id.Subject
	if u.p.provider == upstream.TypeGitHub {
		if l, ok := id.Claims["login"].(string); ok {
			u.login = strings.ToLower(l)
		}
	}
	if id.Email != "" && (u.p.provider == upstream.TypeGitHub || verified(id.Claims["email_verified"])) {
		u.email = strings.ToLower(id.Email)
	}
	// hd is Google's claim; the ID token's wins over userinfo's (upstream merges them
	// so), and nothing the authorization request said is consulted.
	if u.p.provider == upstream.TypeGoogle || u.p.provider == upstream.TypeOIDC {
		if hd, ok := id.Claims["hd"].(string); ok {
			u.hostedDomain = strings.ToLower(hd)
		}
	}
	u.groups = id.Groups
}

func verified(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return strings.EqualFold(x, "true")
	}
	return false
}

// match returns the first rule of r the user matches, "" for none.
func (u *user) match(ctx context.Context, r ruleSet) (string, error) {
	switch {
	case r.users[u.id]:
		return "users: " + u.id, nil
	case u.login != "" && r.logins[u.login]:
		return "users: " + u.login, nil
	case u.email != "" && r.emails[u.email]:
		return "emails: " + u.email, nil
	case u.email != "" && r.domains[domainOf(u.email)]:
		return "emailDomains: " + domainOf(u.email), nil
	case u.hostedDomain != "" && r.hostedDomains[u.hostedDomain]:
		return "googleHostedDomains: " + u.hostedDomain, nil
	}
	for _, g := range u.groups {
		if r.groups[g] {
			return "groups: " + g, nil
		}
	}
	if !r.needsMemberships() {
		return "", nil
	}
	m, err := u.readMemberships(ctx)
	if err != nil {
		return "", err
	}
	for _, o := range m.Organizations {
		if r.orgs[o] {
			return "githubOrganizations: " + o, nil
		}
	}
	for _, t := range m.Teams {
		if r.teams[t] {
			return "githubTeams: " + t, nil
		}
	}
	return "", nil
}

// readMemberships reads every membership any rule needs, once per login.
func (u *user) readMemberships(ctx context.Context) (*upstream.Memberships, error) {
	if u.memberships != nil {
		return u.memberships, nil
	}
	if u.in.Memberships == nil {
		return nil, fmt.Errorf("%w: the %s provider cannot read organizations or teams", ErrMemberships, u.p.provider)
	}
	m, err := u.in.Memberships(ctx, u.p.query)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMemberships, err)
	}
	if m == nil {
		m = &upstream.Memberships{}
	}
	u.memberships = m
	return m, nil
}

func domainOf(email string) string {
	return email[strings.LastIndexByte(email, '@')+1:]
}

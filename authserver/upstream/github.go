package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Memberships are the user's organizations and teams at the upstream, lower-cased
// (GitHub compares logins and slugs without case): "acme" and "acme/platform".
type Memberships struct {
	Organizations []string
	Teams         []string
}

// MembershipQuery says which memberships to read; each costs API calls.
type MembershipQuery struct {
	Organizations, Teams bool
}

// MembershipReader is the capability of providers whose organization and team
// memberships can be read with the user's access token (github). Find it with a type
// assertion on a Provider.
type MembershipReader interface {
	// Memberships reads what q asks for. Errors wrap ErrMembership, and also
	// ErrUnavailable when trying again later may help.
	Memberships(ctx context.Context, accessToken string, q MembershipQuery) (*Memberships, error)
	// MembershipScope is the upstream scope the user's token needs for Memberships.
	MembershipScope() string
}

var (
	// ErrMembership: the user's memberships could not be read.
	ErrMembership = errors.New("upstream: memberships unavailable")
	// ErrUnavailable: the upstream did not answer usefully (network, timeout, 5xx,
	// rate limit); a later attempt may succeed.
	ErrUnavailable = errors.New("upstream: temporarily unavailable")
)

// githubMembershipScope lets an OAuth app token list the user's organizations
// (including private memberships) and teams.
const githubMembershipScope = "read:org"

// githubPageSize is the largest page GitHub's list endpoints return.
const githubPageSize = 100

// githubMaxPages bounds the pages read per list: a user in more than
// githubPageSize*githubMaxPages organizations or teams gets an error, not a guess.
const githubMaxPages = 10

// githubProvider is the github preset with the membership capability.
type githubProvider struct {
	*oauth2Provider
	apiURL string
}

var (
	_ Provider         = (*githubProvider)(nil)
	_ MembershipReader = (*githubProvider)(nil)
)

func newGitHubProvider(ctx context.Context, s settings) (Provider, error) {
	p, err := newOAuth2Provider(ctx, s)
	if err != nil {
		return nil, err
	}
	return &githubProvider{oauth2Provider: p.(*oauth2Provider), apiURL: strings.TrimSuffix(s.apiURL, "/")}, nil
}

// MembershipScope implements MembershipReader.
func (p *githubProvider) MembershipScope() string { return githubMembershipScope }

// Memberships implements MembershipReader with GET /user/orgs and GET /user/teams.
// Both list private memberships for a token with read:org. An organization that
// restricts OAuth app access and has not approved ours is left out by GitHub: its
// members look like non-members, which keeps a rule naming it closed.
func (p *githubProvider) Memberships(ctx context.Context, accessToken string, q MembershipQuery) (*Memberships, error) {
	m := &Memberships{}
	if q.Organizations {
		err := p.list(ctx, accessToken, "/user/orgs", func(body []byte) error {
			var orgs []struct {
				Login string `json:"login"`
			}
			if err := decodeJSON(body, &orgs); err != nil {
				return err
			}
			for _, o := range orgs {
				if o.Login != "" {
					m.Organizations = append(m.Organizations, strings.ToLower(o.Login))
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if q.Teams {
		err := p.list(ctx, accessToken, "/user/teams", func(body []byte) error {
			var teams []struct {
				Slug         string `json:"slug"`
				Organization struct {
					Login string `json:"login"`
				} `json:"organization"`
			}
			if err := decodeJSON(body, &teams); err != nil {
				return err
			}
			for _, t := range teams {
				if t.Slug != "" && t.Organization.Login != "" {
					m.Teams = append(m.Teams, strings.ToLower(t.Organization.Login+"/"+t.Slug))
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// list reads every page of a GitHub list endpoint, following the Link header's next
// URL (only on the API's own host: the token goes with it).
func (p *githubProvider) list(ctx context.Context, accessToken, path string, page func([]byte) error) error {
	next := p.apiURL + path + "?per_page=" + strconv.Itoa(githubPageSize)
	for range githubMaxPages {
		body, header, status, err := fetchWithHeader(ctx, p.s.client, http.MethodGet, next, accessToken)
		if err != nil {
			return githubError(path, status, header, err)
		}
		if err := page(body); err != nil {
			return fmt.Errorf("%w: github %s: %w", ErrMembership, path, err)
		}
		link := nextLink(header.Get("Link"))
		if link == "" {
			return nil
		}
		if !p.sameAPIHost(link) {
			return fmt.Errorf("%w: github %s: the next page %q is not on the API host", ErrMembership, path, link)
		}
		next = link
	}
	return fmt.Errorf("%w: github %s: more than %d entries", ErrMembership, path, githubPageSize*githubMaxPages)
}

func (p *githubProvider) sameAPIHost(raw string) bool {
	api, err1 := url.Parse(p.apiURL)
	u, err2 := url.Parse(raw)
	return err1 == nil && err2 == nil && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)
}

// githubError classifies a failed call. GitHub answers a spent rate limit with 403 or
// 429 and x-ratelimit-remaining: 0 (or Retry-After for the secondary limit): that is
// worth retrying, unlike a 401 or a 403 for a missing scope.
func githubError(path string, status int, h http.Header, err error) error {
	var ne net.Error
	switch {
	case status == 0 && (errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)):
		return fmt.Errorf("%w: %w: github %s: %w", ErrMembership, ErrUnavailable, path, err)
	case status >= 500, status == http.StatusTooManyRequests,
		status == http.StatusForbidden && (h.Get("X-Ratelimit-Remaining") == "0" || h.Get("Retry-After") != ""):
		return fmt.Errorf("%w: %w: github %s: %w", ErrMembership, ErrUnavailable, path, err)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("%w: github %s refused the user's token (it needs the %s scope): %w", ErrMembership, path, githubMembershipScope, err)
	}
	return fmt.Errorf("%w: github %s: %w", ErrMembership, path, err)
}

// nextLink returns the rel="next" URL of an RFC 8288 Link header, or "".
func nextLink(h string) string {
	for part := range strings.SplitSeq(h, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
			continue
		}
		for param := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
			if strings.EqualFold(k, "rel") && strings.Contains(" "+strings.Trim(v, `"`)+" ", " next ") {
				return target[1 : len(target)-1]
			}
		}
	}
	return ""
}

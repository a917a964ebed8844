package upstreamtest

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// GitHub paths, relative to GitHub.URL: the OAuth app endpoints (github.com) and the
// REST API calls mcpauth makes (api.github.com), served by one httptest server.
const (
	GitHubPathAuthorize = "/login/oauth/authorize"
	GitHubPathToken     = "/login/oauth/access_token"
	GitHubPathUser      = "/user"
	GitHubPathEmails    = "/user/emails"
	GitHubPathOrgs      = "/user/orgs"
	GitHubPathTeams     = "/user/teams"
)

// GitHubUser is who the fake GitHub logs in.
type GitHubUser struct {
	ID    int64
	Login string
	// Email is the public address on /user; empty makes /user/emails the source.
	Email string
	// PrimaryEmail is the primary, verified address /user/emails lists.
	PrimaryEmail string
	// Orgs are organization logins; Teams are "org/team-slug".
	Orgs, Teams []string
}

// GitHub is a fake of GitHub for an OAuth app: the authorization and token endpoints
// and GET /user, /user/emails, /user/orgs and /user/teams, with GitHub's shapes and
// rules where mcpauth depends on them:
//   - the token endpoint takes the client credentials in the form and answers errors
//     with HTTP 200; tokens carry the scopes asked for, listed in X-OAuth-Scopes;
//   - /user/orgs and /user/teams need the read:org scope (or user, or repo): without
//     it /user/teams answers 403 and /user/orgs lists nothing (the fake treats every
//     membership as private);
//   - lists are paginated with per_page (default 30, at most 100) and page, and a
//     Link header naming the next page;
//   - a token is accepted as "Bearer" or "token".
type GitHub struct {
	// URL is the base of every endpoint; APIURL equals it.
	URL, APIURL            string
	ClientID, ClientSecret string

	ts *httptest.Server

	mu        sync.Mutex
	user      GitHubUser
	codes     map[string]githubGrant
	tokens    map[string]githubGrant
	apiStatus int
	apiHeader http.Header
	lastScope string

	orgCalls, teamCalls atomic.Int64
}

type githubGrant struct {
	user                   GitHubUser
	scopes                 []string
	redirectURI, challenge string
}

// NewGitHub starts a fake GitHub that stops when t's test ends. It logs in user.
func NewGitHub(t testing.TB, user GitHubUser) *GitHub {
	t.Helper()
	g := &GitHub{
		ClientID: "gh-client", ClientSecret: "gh-secret",
		codes: map[string]githubGrant{}, tokens: map[string]githubGrant{},
	}
	g.SetUser(user)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+GitHubPathAuthorize, g.authorize)
	mux.HandleFunc("POST "+GitHubPathToken, g.token)
	mux.HandleFunc("GET "+GitHubPathUser, g.api(g.userHandler))
	mux.HandleFunc("GET "+GitHubPathEmails, g.api(g.emails))
	mux.HandleFunc("GET "+GitHubPathOrgs, g.api(g.orgs))
	mux.HandleFunc("GET "+GitHubPathTeams, g.api(g.teams))
	g.ts = httptest.NewServer(mux)
	t.Cleanup(g.ts.Close)
	g.URL, g.APIURL = g.ts.URL, g.ts.URL
	return g
}

// Config returns an upstream.Config for the github preset pointed at this server.
func (g *GitHub) Config(redirectURL string) upstream.Config {
	return upstream.Config{
		Type:             upstream.TypeGitHub,
		ClientID:         g.ClientID,
		ClientSecret:     g.ClientSecret,
		AuthorizationURL: g.URL + GitHubPathAuthorize,
		TokenURL:         g.URL + GitHubPathToken,
		APIURL:           g.APIURL,
		Scopes:           []string{"read:user", "user:email", "read:org"},
		RedirectURL:      redirectURL,
		HTTPClient:       g.ts.Client(),
	}
}

// SetUser sets who the next authorization logs in.
func (g *GitHub) SetUser(u GitHubUser) {
	u.Orgs, u.Teams = slices.Clone(u.Orgs), slices.Clone(u.Teams)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.user = u
}

// FailMemberships makes /user/orgs and /user/teams answer status with header (a 502,
// or a 403 with X-RateLimit-Remaining: 0); status 0 heals them.
func (g *GitHub) FailMemberships(status int, header http.Header) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.apiStatus, g.apiHeader = status, header
}

// LastScope is the scope parameter of the latest authorization request.
func (g *GitHub) LastScope() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastScope
}

// OrgCalls and TeamCalls count requests to /user/orgs and /user/teams (pages included).
func (g *GitHub) OrgCalls() int  { return int(g.orgCalls.Load()) }
func (g *GitHub) TeamCalls() int { return int(g.teamCalls.Load()) }

// authorize logs the user in at once and redirects back with a code, as GitHub does
// for a user who authorized the app before.
func (g *GitHub) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != g.ClientID {
		http.Error(w, "unknown client", http.StatusNotFound)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	code := rand.Text()
	g.mu.Lock()
	g.lastScope = q.Get("scope")
	// GitHub takes scopes separated by spaces or commas.
	scopes := strings.FieldsFunc(q.Get("scope"), func(r rune) bool { return r == ' ' || r == ',' })
	g.codes[code] = githubGrant{user: g.user, scopes: scopes, redirectURI: redirect.String(), challenge: q.Get("code_challenge")}
	g.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (g *GitHub) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	if f.Get("client_id") != g.ClientID || subtle.ConstantTimeCompare([]byte(f.Get("client_secret")), []byte(g.ClientSecret)) != 1 {
		writeJSON(w, http.StatusOK, map[string]string{"error": "incorrect_client_credentials"})
		return
	}
	g.mu.Lock()
	gr, ok := g.codes[f.Get("code")]
	delete(g.codes, f.Get("code"))
	g.mu.Unlock()
	switch {
	case !ok:
		writeJSON(w, http.StatusOK, map[string]string{"error": "bad_verification_code"})
		return
	case f.Get("redirect_uri") != gr.redirectURI:
		writeJSON(w, http.StatusOK, map[string]string{"error": "redirect_uri_mismatch"})
		return
	case gr.challenge != "" && !pkceMatches(f.Get("code_verifier"), gr.challenge):
		writeJSON(w, http.StatusOK, map[string]string{"error": "bad_verification_code"})
		return
	}
	tok := "gho_" + rand.Text()
	g.mu.Lock()
	g.tokens[tok] = gr
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": tok, "token_type": "bearer", "scope": strings.Join(gr.scopes, ","),
	})
}

// api authenticates an API request and sets GitHub's headers.
func (g *GitHub) api(h func(http.ResponseWriter, *http.Request, githubGrant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok {
			tok, _ = strings.CutPrefix(auth, "token ")
		}
		g.mu.Lock()
		gr, ok := g.tokens[tok]
		g.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials"})
			return
		}
		w.Header().Set("X-OAuth-Scopes", strings.Join(gr.scopes, ", "))
		w.Header().Set("X-RateLimit-Remaining", "4999")
		h(w, r, gr)
	}
}

func (g *GitHub) userHandler(w http.ResponseWriter, _ *http.Request, gr githubGrant) {
	u := gr.user
	body := map[string]any{"id": u.ID, "login": u.Login, "type": "User", "email": nil}
	if u.Email != "" {
		body["email"] = u.Email
	}
	writeJSON(w, http.StatusOK, body)
}

func (g *GitHub) emails(w http.ResponseWriter, _ *http.Request, gr githubGrant) {
	if !slices.Contains(gr.scopes, "user:email") && !slices.Contains(gr.scopes, "user") {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	var list []map[string]any
	if gr.user.PrimaryEmail != "" {
		list = append(list, map[string]any{"email": gr.user.PrimaryEmail, "primary": true, "verified": true, "visibility": "private"})
	}
	writeJSON(w, http.StatusOK, list)
}

func (g *GitHub) canReadOrgs(gr githubGrant) bool {
	return slices.ContainsFunc(gr.scopes, func(s string) bool { return s == "read:org" || s == "user" || s == "repo" })
}

// failure answers the injected API failure, if any.
func (g *GitHub) failure(w http.ResponseWriter) bool {
	g.mu.Lock()
	status, header := g.apiStatus, g.apiHeader
	g.mu.Unlock()
	if status == 0 {
		return false
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	writeJSON(w, status, map[string]string{"message": http.StatusText(status)})
	return true
}

func (g *GitHub) orgs(w http.ResponseWriter, r *http.Request, gr githubGrant) {
	g.orgCalls.Add(1)
	if g.failure(w) {
		return
	}
	var items []any
	if g.canReadOrgs(gr) {
		for i, o := range gr.user.Orgs {
			items = append(items, map[string]any{"login": o, "id": 1000 + i, "url": g.APIURL + "/orgs/" + o})
		}
	}
	g.page(w, r, items)
}

func (g *GitHub) teams(w http.ResponseWriter, r *http.Request, gr githubGrant) {
	g.teamCalls.Add(1)
	if g.failure(w) {
		return
	}
	if !g.canReadOrgs(gr) {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Resource not accessible by integration"})
		return
	}
	var items []any
	for i, t := range gr.user.Teams {
		org, slug, _ := strings.Cut(t, "/")
		items = append(items, map[string]any{
			"id": 2000 + i, "slug": slug, "name": slug,
			"organization": map[string]any{"login": org, "id": 1000},
		})
	}
	g.page(w, r, items)
}

// page answers one page of items as GitHub does, with a Link header to the next.
func (g *GitHub) page(w http.ResponseWriter, r *http.Request, items []any) {
	q := r.URL.Query()
	per, _ := strconv.Atoi(cmp.Or(q.Get("per_page"), "30"))
	per = min(max(per, 1), 100)
	page, _ := strconv.Atoi(cmp.Or(q.Get("page"), "1"))
	page = max(page, 1)
	from := min((page-1)*per, len(items))
	to := min(from+per, len(items))
	if to < len(items) {
		next := *r.URL
		nq := next.Query()
		nq.Set("page", strconv.Itoa(page+1))
		nq.Set("per_page", strconv.Itoa(per))
		next.RawQuery = nq.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, g.APIURL, next.RequestURI()))
	}
	out := items[from:to]
	if out == nil {
		out = []any{}
	}
	writeJSON(w, http.StatusOK, out)
}

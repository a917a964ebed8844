package authserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// Step-up with upstream scopes (Options.UpstreamScopes).
//
// Some of our scopes need more of the upstream provider than a login asks for: a tool
// behind tools:write calls the upstream API with the user's upstream token, which must
// then carry, say, GitHub's repo scope. When a client asks for such a scope, the
// upstream authorization request asks for it too. We keep no login session, so every
// authorization visits the upstream provider; what a step-up changes is what that
// visit asks for. A browser that completed a login here carries a sealed user hint;
// when the hinted user's stored upstream token already holds the provider's default
// scopes, the visit asks for only the upstream scopes that token lacks (incremental
// consent: GitHub and Google, the latter with include_granted_scopes=true, return a
// token for every scope the user has granted the app). Without a usable hint it asks
// for the defaults plus the extras, which those providers answer without prompting for
// what was granted before.
//
// The hint is never authentication: the user is whoever the upstream provider says at
// the callback. It only chooses what to ask for, and its scopes are added to the new
// token's only when the callback's user is the hinted one.

// userHint is the sealed content of the user hint cookie.
type userHint struct {
	User    string `json:"u"`
	Expires int64  `json:"e"`
}

func (s *Server) userHintAAD() string { return "user-hint\x00" + s.issuer }

// setUserHint remembers in this browser who logged in, for as long as their upstream
// token is kept.
func (s *Server) setUserHint(w http.ResponseWriter, userID string) {
	raw, _ := json.Marshal(userHint{User: userID, Expires: s.now().Add(s.opts.ExternalTokenTTL).Unix()})
	sealed, err := s.keys.seal(raw, s.userHintAAD())
	if err != nil {
		return // a missing hint costs a full upstream request, nothing more
	}
	s.setCookie(w, s.cookies.user, base64.RawURLEncoding.EncodeToString(sealed), s.opts.ExternalTokenTTL)
}

// readUserHint returns the user this browser last logged in as, if its hint is ours
// and current.
func (s *Server) readUserHint(r *http.Request) (string, bool) {
	c, err := r.Cookie(s.cookies.user)
	if err != nil || len(c.Value) > 1024 {
		return "", false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return "", false
	}
	raw, err := s.keys.open(sealed, s.userHintAAD())
	if err != nil {
		return "", false
	}
	var h userHint
	if json.Unmarshal(raw, &h) != nil || h.User == "" || s.now().Unix() >= h.Expires {
		return "", false
	}
	return h.User, true
}

// extraUpstreamScopes are the upstream scopes our scopes need beyond a login's.
func (s *Server) extraUpstreamScopes(scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		for _, u := range s.opts.UpstreamScopes[sc] {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}

// defaultUpstreamScopes are what a login asks the upstream provider for.
func (s *Server) defaultUpstreamScopes() []string {
	if sc, ok := s.upstream.(upstream.Scoper); ok {
		return sc.Scopes()
	}
	return nil
}

// upstreamScopesFor decides what the upstream authorization request of a request
// for scopes asks for: nil for the provider's defaults; for a step-up, the upstream
// scopes the hinted user's stored token lacks (and that user), or the defaults plus
// every extra.
func (s *Server) upstreamScopesFor(r *http.Request, scopes []string) (ask []string, stepUpUser string) {
	extras := s.extraUpstreamScopes(scopes)
	if len(extras) == 0 {
		return nil, ""
	}
	base := s.defaultUpstreamScopes()
	wanted := append(slices.Clone(base), extras...)
	wanted = splitScope(joinScope(wanted)) // without repeats, in order
	user, ok := s.readUserHint(r)
	if !ok {
		return wanted, ""
	}
	tok, err := s.loadUpstreamToken(r.Context(), user)
	if err != nil {
		return wanted, ""
	}
	granted := splitScope(tok.Scope)
	if len(granted) == 0 || !subset(base, granted) {
		return wanted, ""
	}
	var missing []string
	for _, u := range wanted {
		if !slices.Contains(granted, u) {
			missing = append(missing, u)
		}
	}
	if len(missing) == 0 {
		// Nothing to add, but the visit must still say who the user is: ask for what
		// they granted, which no provider prompts for again.
		return wanted, ""
	}
	return missing, user
}

// grantedUpstreamScopes decides which upstream scopes the new upstream token covers,
// so the server can tell later what it is good for. The token response's scope when
// the provider sent one (RFC 6749 §5.1: it must when it differs from the request);
// otherwise what was asked for, plus, for an incremental authorization of the same
// user, what their previous token held.
func (s *Server) grantedUpstreamScopes(ctx context.Context, p store.PendingAuthorization, tok *upstream.Token, userID string) []string {
	if tok.Scope != "" {
		return splitScope(tok.Scope)
	}
	asked := splitScope(p.UpstreamScope)
	if len(asked) == 0 {
		asked = s.defaultUpstreamScopes()
	}
	if p.StepUpUser == "" || p.StepUpUser != userID {
		return asked
	}
	old, err := s.loadUpstreamToken(ctx, userID)
	if err != nil {
		return asked
	}
	return splitScope(joinScope(append(splitScope(old.Scope), asked...)))
}

// coveredScopes drops from scopes those whose upstream scopes the upstream token does
// not hold: a client that stepped up while the user declined the upstream scope gets
// the token it can use, not one whose tools would fail upstream.
func (s *Server) coveredScopes(scopes, granted []string) []string {
	return slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool {
		return !subset(s.opts.UpstreamScopes[sc], granted)
	})
}

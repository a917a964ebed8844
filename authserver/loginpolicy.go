package authserver

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"

	"github.com/mcpauth/mcpauth/authserver/access"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// refusedPage is the data of templates/refused.html.
type refusedPage struct {
	ServerName   string
	Title        string
	UpstreamName string
	Account      string
	Reason       string
	ClientName   string
	RedirectHost string
	// ContinueURL is the client's redirect URI with error=access_denied. It is a
	// registered redirect URI (validated, no script schemes), and private-use schemes
	// of native apps must survive html/template's URL filter, hence template.URL.
	ContinueURL template.URL
}

// applyAccessPolicy runs the login policy on a user the upstream has just
// authenticated, and returns the scope to grant: the pending request's, less the
// restricted scopes the user's memberships do not grant. When the user may not log in
// it answers the browser itself and returns ok false; nothing has been stored by then
// (the pending record is spent, as every callback spends it). refused tells a decision
// against the user from a check that could not be made (memberships unreadable), which
// may pass on another try: a device flow ends for good only on a refusal. A device's
// login answers such a failure with again (deviceCallback), which gives its user code
// back; a client's hears the error at its redirect URI.
func (s *Server) applyAccessPolicy(w http.ResponseWriter, r *http.Request, p store.PendingAuthorization, tok *upstream.Token, id *upstream.Identity, again func(status int, what string)) (scope string, ok, refused bool) {
	policy := s.opts.Access
	if policy == nil {
		return p.Scope, true, false
	}
	in := access.Input{Identity: id}
	if mr, ok := s.upstream.(upstream.MembershipReader); ok && tok != nil {
		in.Memberships = func(ctx context.Context, q upstream.MembershipQuery) (*upstream.Memberships, error) {
			return mr.Memberships(ctx, tok.AccessToken, q)
		}
	}
	d, err := policy.Decide(r.Context(), in)
	if err != nil {
		// Fail closed: a user whose memberships cannot be read is not let in, and the
		// client hears whether trying again later may help.
		s.metrics.loginRefused(refusedCheck)
		s.log.WarnContext(r.Context(), "login refused: the access rules could not be checked",
			"client_id", p.ClientID, "user", id.Subject, "err", err)
		oe := newError(http.StatusInternalServerError, errCodeServerError, "the account's organization or team memberships could not be checked")
		if errors.Is(err, upstream.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			oe = newError(http.StatusServiceUnavailable, errCodeTemporarilyUnavailable, "the upstream provider did not answer the membership check, try again later")
		}
		if p.RedirectURI == "" && again != nil {
			again(oe.Status, "The sign-in could not be completed: "+safeDescription(oe.Description)+".")
		} else {
			s.redirectError(w, r, p.RedirectURI, p.State, oe)
		}
		return "", false, false
	}
	if !d.Allowed {
		s.refuseLogin(w, r, p, id, refusedNotAllowed,
			"This account is not allowed to sign in to "+s.opts.DisplayName+".")
		return "", false, true
	}
	requested := splitScope(p.Scope)
	granted := policy.GrantedScopes(requested, d)
	if len(requested) > 0 && len(granted) == 0 {
		s.refuseLogin(w, r, p, id, refusedNoScope,
			"This account is not granted any of the access the application asked for.")
		return "", false, true
	}
	s.log.InfoContext(r.Context(), "login allowed", "client_id", p.ClientID, "user", id.Subject,
		"rule", d.Rule, "scope", joinScope(granted))
	return joinScope(granted), true, false
}

// refuseLogin shows the browser why the login was refused, with a link that takes the
// user on to the client's redirect URI carrying error=access_denied (RFC 6749
// §4.1.2.1) and iss (RFC 9207). Our page rather than a bare redirect: the client's
// page cannot say which account was refused or what to do about it.
func (s *Server) refuseLogin(w http.ResponseWriter, r *http.Request, p store.PendingAuthorization, id *upstream.Identity, reason, message string) {
	s.metrics.loginRefused(reason)
	s.log.WarnContext(r.Context(), "login refused by the access rules", "client_id", p.ClientID,
		"user", id.Subject, "reason", reason)
	if p.RedirectURI == "" { // a device's login (RFC 8628): nowhere to return to
		s.renderPage(w, r, http.StatusForbidden, "refused.html", pageCSP, refusedPage{
			ServerName: s.opts.DisplayName, Title: "Your account is not allowed to sign in to " + s.opts.DisplayName,
			UpstreamName: s.opts.UpstreamDisplayName, Account: accountName(id), Reason: message,
			ClientName: p.ClientID,
		})
		return
	}
	continueURL, err := s.clientRedirectURL(p.RedirectURI, p.State, url.Values{
		"error":             {errCodeAccessDenied},
		"error_description": {safeDescription("the account is not allowed to sign in to " + s.opts.DisplayName)},
	})
	if err != nil {
		s.renderError(w, r, http.StatusForbidden, message)
		return
	}
	clientName := p.ClientID
	if c, err := s.resolveClient(r.Context(), p.ClientID); err == nil && c.Name != "" {
		clientName = c.Name
	}
	page := refusedPage{
		ServerName:   s.opts.DisplayName,
		Title:        "Your account is not allowed to sign in to " + s.opts.DisplayName,
		UpstreamName: s.opts.UpstreamDisplayName,
		Account:      accountName(id),
		Reason:       message,
		ClientName:   clientName,
		RedirectHost: redirectHost(p.RedirectURI),
		ContinueURL:  template.URL(continueURL), // a registered redirect URI, see refusedPage
	}
	s.renderPage(w, r, http.StatusForbidden, "refused.html", pageCSP, page)
}

// accountName is how the refused page names the account: the address, else the login
// or name, else the upstream ID. The page goes only to the browser that did the login
// (the callback checked its binding).
func accountName(id *upstream.Identity) string {
	switch {
	case id.Email != "":
		return id.Email
	case id.Name != "":
		return id.Name
	}
	return id.Subject
}

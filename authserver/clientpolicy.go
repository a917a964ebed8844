package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpauth/mcpauth/authserver/clientpolicy"
	"github.com/mcpauth/mcpauth/authserver/store"
)

// Which client may ask (Options.ClientPolicy, package clientpolicy): the rules are
// applied where a client is resolved (metadata-document domains and redirect URIs),
// registered (redirect URIs, scope), asks for scope (grantableScope), and where a
// login starts and ends (approval).

// DefaultPendingApprovalTTL is how long a client's request for approval waits for an
// administrator; a client that tries again after it is listed again.
const DefaultPendingApprovalTTL = 7 * 24 * time.Hour

// ApprovalRegistry is implemented by a ClientRegistry that also holds clients an
// administrator approved declaratively: the operator lists in its registry the client
// IDs of MCPClients with spec.approveClientID. StaticClients implements it.
type ApprovalRegistry interface {
	// Approved reports whether the registry approves the dynamic or metadata-document
	// client id.
	Approved(ctx context.Context, id string) (bool, error)
}

// clientRefusedError is a client the policy refuses. It counts as errUnknownClient
// for every caller that only needs to know the client cannot be used; the
// authorization endpoint shows Page, the token endpoint answers invalid_client with
// Description.
type clientRefusedError struct {
	Page        string
	Description string
}

func (e *clientRefusedError) Error() string        { return "client refused by policy: " + e.Description }
func (e *clientRefusedError) Is(target error) bool { return target == errUnknownClient }

// Reasons of mcpauth_clients_refused_total.
const (
	refusedMetadataDomain  = "metadata_document_domain"
	refusedRedirectURI     = "redirect_uri"
	refusedApprovalPending = "approval_pending"
	refusedApprovalDenied  = "approval_denied"
)

func newClientRefusals() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mcpauth_clients_refused_total",
		Help: "Logins and registrations the client policy stopped, by reason: metadata_document_domain, redirect_uri, approval_pending (held for an administrator) or approval_denied.",
	}, []string{"reason"})
}

func (s *Server) clientRefused(reason string) {
	s.clientRefusals.WithLabelValues(reason).Inc()
}

// kind is the client's kind for the policy.
func (c *client) kind() clientpolicy.Kind {
	switch c.Source {
	case sourceStatic:
		return clientpolicy.PreRegistered
	case sourceMetadata:
		return clientpolicy.MetadataDocument
	}
	return clientpolicy.Dynamic
}

// checkMetadataDomain refuses a metadata-document client ID on a host the policy does
// not list, before its document is fetched: an unlisted host never gets a request
// from us.
func (s *Server) checkMetadataDomain(id string) error {
	if s.opts.ClientPolicy.AllowsMetadataDocument(id) {
		return nil
	}
	s.clientRefused(refusedMetadataDomain)
	return &clientRefusedError{
		Page:        fmt.Sprintf("This server does not accept applications whose client ID is on %s. Ask its administrator to allow the domain.", hostOf(id)),
		Description: "client_id metadata documents from this domain are not accepted"}
}

// checkMetadataRedirects refuses a metadata document that lists a redirect URI the
// policy does not allow: the document, not one request, is what is out of policy.
func (s *Server) checkMetadataRedirects(uris []string) error {
	bad := s.opts.ClientPolicy.DisallowedRedirectURI(uris)
	if bad == "" {
		return nil
	}
	s.clientRefused(refusedRedirectURI)
	return &clientRefusedError{
		Page:        fmt.Sprintf("The application's metadata document lists the redirect URI %s, which this server does not allow.", bad),
		Description: "the client's metadata document lists a redirect URI this server does not allow"}
}

// limitScope applies the kind's maximum scope to a request's scopes (already checked
// against the server's and the client's own). RFC 6749 §3.3: the server "MAY fully or
// partially ignore the scope requested by the client, based on the authorization
// server policy"; the token response then names the scope issued. So the scopes
// beyond the bound are dropped, and the request is refused only when nothing is left
// of what it asked for.
func (s *Server) limitScope(c *client, scopes []string, requested bool) ([]string, *oauthError) {
	bound := s.opts.ClientPolicy.MaxScopes(c.kind())
	if bound == nil {
		return scopes, nil
	}
	narrowed := intersect(scopes, bound)
	if requested && len(narrowed) == 0 {
		return nil, newError(http.StatusBadRequest, errCodeInvalidScope,
			"none of the requested scopes may be granted to a "+c.kind().String()+" client")
	}
	return narrowed, nil
}

// approvalGate lets a login go on only for a client that needs no approval or has
// it. Otherwise it shows the waiting page (recording the request for the
// administrator) or the refusal page, and nothing is issued: never a redirect, since
// an unapproved client is exactly the one whose redirect URI we do not vouch for.
func (s *Server) approvalGate(w http.ResponseWriter, r *http.Request, v *validatedAuthz) bool {
	a, ok, err := s.approval(r.Context(), v.client)
	switch {
	case err != nil:
		s.renderStoreError(w, r, err)
		return false
	case ok:
		return true
	}
	s.renderApproval(w, r, v.client.displayName(), a, r.Method == http.MethodGet)
	return false
}

// approval decides whether c may complete a login now. Only approval mode consults
// the records, so a server without it pays no store read. Decisions in the store come
// first: a denial there stands even when the registry approves (an administrator's
// explicit refusal), and `mcpauth admin approve` lifts it. A client nobody has
// decided on gets a pending record.
func (s *Server) approval(ctx context.Context, c *client) (store.ClientApproval, bool, error) {
	kind := c.kind()
	if !s.opts.ClientPolicy.NeedsApproval(kind) {
		return store.ClientApproval{}, true, nil
	}
	rec, err := s.store.GetApproval(ctx, c.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return rec, false, fmt.Errorf("get approval: %w", err)
	case rec.Status == store.ApprovalDenied:
		s.clientRefused(refusedApprovalDenied)
		return rec, false, nil
	case rec.Status == store.ApprovalApproved:
		return rec, true, nil
	}
	if ok, err := s.registryApproves(ctx, c.ID); err != nil || ok {
		if ok && rec.Status == store.ApprovalPending {
			// The registry decided: the request leaves the pending list, and comes back
			// if the registry's approval is withdrawn and the client asks again.
			if err := s.store.DeleteApproval(ctx, c.ID); err != nil {
				s.log.WarnContext(ctx, "drop a pending approval the registry answered", "client_id", c.ID, "err", err)
			}
		}
		return rec, ok, err
	}
	now := s.now()
	rec, err = s.store.RequestApproval(ctx, store.ClientApproval{
		ClientID: c.ID, Status: store.ApprovalPending, Kind: kind.String(), Name: c.Name,
		RedirectURIs: slices.Clone(c.RedirectURIs), RequestedAt: now, ExpiresAt: now.Add(DefaultPendingApprovalTTL),
	})
	if err != nil {
		return rec, false, fmt.Errorf("request approval: %w", err)
	}
	if rec.Status == store.ApprovalApproved {
		return rec, true, nil // decided between our read and our request
	}
	s.clientRefused(refusedApprovalPending)
	return rec, false, nil
}

// registryApproves reports whether the client registry (MCPClient spec.approveClientID)
// approves id.
func (s *Server) registryApproves(ctx context.Context, id string) (bool, error) {
	ar, ok := s.opts.Clients.(ApprovalRegistry)
	if !ok {
		return false, nil
	}
	approved, err := ar.Approved(ctx, id)
	if err != nil {
		return false, fmt.Errorf("look up registry approval: %w", err)
	}
	return approved, nil
}

// callbackApproval checks, when the user comes back from the upstream, that the
// client is still allowed: a denial made while the user was signing in stops the
// login before a code exists. The client is resolved from its ID alone (a
// metadata-document client is not fetched again: its kind is in its ID).
func (s *Server) callbackApproval(w http.ResponseWriter, r *http.Request, clientID string) bool {
	if !s.opts.ClientPolicy.NeedsApproval(clientpolicy.Dynamic) {
		return true
	}
	c := &client{ID: clientID, Name: clientID, Source: sourceDynamic}
	switch {
	case isMetadataClientID(clientID):
		c.Source = sourceMetadata
	case !s.storedClientID(r.Context(), clientID):
		return true // pre-registered
	}
	a, ok, err := s.approval(r.Context(), c)
	switch {
	case err != nil:
		s.renderStoreError(w, r, err)
		return false
	case ok:
		return true
	}
	if a.Name != "" {
		c.Name = a.Name
	}
	s.renderApproval(w, r, c.displayName(), a, false)
	return false
}

// approvalPage is the data of templates/approval.html.
type approvalPage struct {
	ServerName     string
	Title          string
	ClientName     string
	ClientID       string
	Denied         bool
	AutoRefresh    bool
	RefreshSeconds int
}

// approvalRefreshSeconds is how often the waiting page reloads itself. The reload
// repeats the same authorization request, so once the client is approved the same
// login goes on where it stopped.
const approvalRefreshSeconds = 15

// renderApproval shows the waiting page (403: the login cannot go on yet) or, for a
// denied client, the refusal.
func (s *Server) renderApproval(w http.ResponseWriter, r *http.Request, name string, a store.ClientApproval, refresh bool) {
	page := approvalPage{ServerName: s.opts.DisplayName, ClientName: name, ClientID: a.ClientID,
		RefreshSeconds: approvalRefreshSeconds}
	if a.Status == store.ApprovalDenied {
		page.Title, page.Denied = "Application not allowed", true
	} else {
		page.Title, page.AutoRefresh = "Waiting for approval", refresh
	}
	if refresh && !page.Denied {
		w.Header().Set("Refresh", fmt.Sprint(approvalRefreshSeconds))
	}
	s.renderPage(w, r, http.StatusForbidden, "approval.html", pageCSP, page)
}

func (c *client) displayName() string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// hostOf is the host of a URL client ID, for a page.
func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Hostname()
	}
	return raw
}

// ReplaceApprovals swaps the set of dynamic and metadata-document client IDs the
// registry approves (the operator's registry lists those of MCPClients with
// spec.approveClientID).
func (r *StaticClients) ReplaceApprovals(ids []string) {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	r.mu.Lock()
	r.approved = m
	r.mu.Unlock()
}

// Approved implements ApprovalRegistry.
func (r *StaticClients) Approved(_ context.Context, id string) (bool, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.approved[id], nil
}

var _ ApprovalRegistry = (*StaticClients)(nil)

package authserver

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// clientCredentials is the client_credentials grant (RFC 6749 §4.4): a confidential
// client acting for itself. There is no user and no upstream token: the token's
// subject is the client (introspection answers sub = client_id), token exchange
// refuses it, and no refresh token is issued (§4.4.3: "A refresh token SHOULD NOT be
// included"). Its grant lives as long as its one access token.
func (s *Server) clientCredentials(r *http.Request, c *client) (*tokenResponse, error) {
	ctx, form := r.Context(), r.PostForm
	// §4.4: "The client credentials grant type MUST only be used by confidential
	// clients." Configuration refuses the combination already; this holds if it did not.
	if !c.confidential() {
		return nil, newError(http.StatusBadRequest, errCodeUnauthorizedClient, "client_credentials needs a confidential client")
	}
	scope, oe := s.clientCredentialsScope(c, form.Get("scope"))
	if oe != nil {
		return nil, oe
	}
	resources, oe := normalizeResources(form["resource"])
	if oe != nil {
		return nil, oe
	}
	now := s.now()
	g := store.Grant{
		ID: newGrantID(), ClientID: c.ID, Scope: scope, Resource: resources,
		AuthTime: now, ExpiresAt: now.Add(s.opts.AccessTokenTTL),
	}
	access, _, pair, err := s.newTokens(c, g, scope, resources, now)
	if err != nil {
		return nil, err
	}
	pair.RefreshHash, pair.Refresh = "", store.Token{}
	pair.ClientUse = s.clientUse(c, now)
	if err := s.store.IssueGrant(ctx, g, pair); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) || errors.Is(err, store.ErrGrantRevoked) {
			// A fresh 128-bit grant ID that is taken: the client may simply retry.
			return nil, newError(http.StatusServiceUnavailable, errCodeTemporarilyUnavailable, "retry the request")
		}
		return nil, err
	}
	return s.tokenResponse(access, "", pair.Access, now), nil
}

// clientCredentialsScope decides the scope of a client_credentials token. A machine
// client asks for what it needs and gets the part it may have: the requested scopes
// narrowed to the client's own (its spec's scopes, else every supported scope); when
// none are requested, all of them. A request of which nothing is left is
// invalid_scope.
func (s *Server) clientCredentialsScope(c *client, requested string) (string, *oauthError) {
	if strings.ContainsAny(requested, "\t\r\n") {
		return "", newError(http.StatusBadRequest, errCodeInvalidScope, "scope must be space-delimited")
	}
	scopes := splitScope(requested)
	for _, sc := range scopes {
		if !validScopeToken(sc) {
			return "", newError(http.StatusBadRequest, errCodeInvalidScope, "malformed scope")
		}
	}
	allowed := s.opts.ScopesSupported
	if len(c.Scopes) > 0 {
		allowed = intersect(c.Scopes, allowed)
	}
	if len(scopes) == 0 {
		return joinScope(allowed), nil
	}
	granted := intersect(scopes, allowed)
	if len(granted) == 0 {
		return "", newError(http.StatusBadRequest, errCodeInvalidScope, "none of the requested scopes is allowed for this client")
	}
	return joinScope(granted), nil
}

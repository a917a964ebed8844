package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
	"github.com/mcpauth/mcpauth/authserver/store"
)

// MinAdminTokenLen is the shortest accepted Options.AdminToken: the token is the only
// thing between the network and revoking every session, so it must not be guessable.
const MinAdminTokenLen = 32

// maxAdminBody bounds an admin request body (a RevokeRequest is a few bytes).
const maxAdminBody = 16 << 10

// revokeWorkers bounds how many grants an admin revocation revokes at once: enough to
// revoke a tenant's grants in seconds on Redis, few enough not to crowd out logins.
const revokeWorkers = 8

// revokePasses is how many times an admin revocation lists and revokes. A grant whose
// code is being redeemed while the first list is read is missed by it; the next pass
// finds it.
const revokePasses = 3

// adminAuth checks the admin bearer token. Both sides are hashed first, so the
// comparison takes the same time whatever the presented token's length.
func (s *Server) adminAuth(r *http.Request) bool {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], s.adminDigest[:]) == 1
}

// admin wraps an admin handler: bearer authentication, then h.
func (s *Server) admin(h func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.adminAuth(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcpauth-admin", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, adminapi.Error{Error: "invalid_token", Description: "the admin API needs the admin bearer token"})
			return
		}
		out, err := h(w, r)
		if err != nil {
			oe := asOAuthError(err)
			if oe.Status >= 500 {
				s.log.ErrorContext(r.Context(), "admin request failed", "route", s.routeOf(r), "err", err)
			}
			writeJSON(w, oe.Status, adminapi.Error{Error: oe.Code, Description: safeDescription(oe.Description)})
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// handleAdminGrants lists grants: GET ?user=U&client=C.
func (s *Server) handleAdminGrants(w http.ResponseWriter, r *http.Request) (any, error) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return nil, newError(http.StatusMethodNotAllowed, errCodeInvalidRequest, "method not allowed")
	}
	q := r.URL.Query()
	if name, ok := singleValues(q); !ok {
		return nil, errInvalidRequest("parameter " + name + " is repeated")
	}
	gs, err := s.store.ListGrants(r.Context(), store.GrantFilter{UserID: q.Get("user"), ClientID: q.Get("client")})
	if err != nil {
		return nil, err
	}
	out := adminapi.GrantList{Grants: make([]adminapi.Grant, 0, len(gs))}
	for _, g := range gs {
		out.Grants = append(out.Grants, adminapi.Grant{
			ID: g.ID, UserID: g.UserID, ClientID: g.ClientID, Scope: g.Scope, Resource: g.Resource,
			AuthTime: g.AuthTime, ExpiresAt: g.ExpiresAt,
		})
	}
	return out, nil
}

// handleAdminClients lists the live dynamic registrations: GET.
func (s *Server) handleAdminClients(w http.ResponseWriter, r *http.Request) (any, error) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return nil, newError(http.StatusMethodNotAllowed, errCodeInvalidRequest, "method not allowed")
	}
	cs, err := s.store.ListClients(r.Context())
	if err != nil {
		return nil, err
	}
	out := adminapi.ClientList{Clients: make([]adminapi.Client, 0, len(cs))}
	for _, c := range cs {
		out.Clients = append(out.Clients, adminapi.Client{
			ID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, Source: c.Source,
			CreatedAt: c.CreatedAt, LastUsedAt: c.LastUsedAt, ExpiresAt: c.ExpiresAt,
		})
	}
	return out, nil
}

// handleAdminClientCount counts the live dynamic registrations: GET.
func (s *Server) handleAdminClientCount(w http.ResponseWriter, r *http.Request) (any, error) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return nil, newError(http.StatusMethodNotAllowed, errCodeInvalidRequest, "method not allowed")
	}
	n, err := s.store.CountClients(r.Context())
	if err != nil {
		return nil, err
	}
	return adminapi.ClientCount{Dynamic: n}, nil
}

// handleAdminRevoke revokes every grant of a user, of a client, or of the whole
// server: POST {"user_id": U} | {"client_id": C} | {"all": true}.
func (s *Server) handleAdminRevoke(w http.ResponseWriter, r *http.Request) (any, error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, newError(http.StatusMethodNotAllowed, errCodeInvalidRequest, "method not allowed")
	}
	req, err := readRevokeRequest(w, r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	f, selector := store.GrantFilter{UserID: req.UserID, ClientID: req.ClientID}, "all"
	switch {
	case req.UserID != "":
		selector = "user"
	case req.ClientID != "":
		selector = "client"
	}
	revoked, users, err := s.revokeGrants(ctx, f)
	s.metrics.adminRevoke.WithLabelValues(selector).Add(float64(revoked))
	s.log.InfoContext(ctx, "admin revocation", "selector", selector, "user", req.UserID, "client", req.ClientID,
		"revoked", revoked, "err", err)
	if err != nil {
		return nil, err
	}
	res := adminapi.RevokeResult{Revoked: revoked}
	if selector == "client" {
		return res, nil
	}
	if selector == "user" {
		users = map[string]bool{req.UserID: true}
	}
	// The vault's upstream tokens go with the user's last grant: nothing may exchange
	// or introspect them any more, and a new login stores a new one.
	for u := range users {
		if err := s.store.DeleteUpstreamToken(ctx, u); err != nil {
			return nil, err
		}
		res.UpstreamTokensDeleted++
	}
	return res, nil
}

// readAdminJSON decodes the body of an admin API request into v. Every admin
// endpoint reads its body the same strict way (JSON only, bounded, no unknown
// fields, one value), so that a typo in a field name is refused rather than
// silently acting on less than the operator meant.
func readAdminJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return errInvalidRequest("content type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errBodyTooLarge
		}
		return errInvalidRequest("malformed JSON body: " + err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errInvalidRequest("malformed JSON body: more than one value")
	}
	return nil
}

// readRevokeRequest decodes a RevokeRequest and checks it selects exactly one thing.
func readRevokeRequest(w http.ResponseWriter, r *http.Request) (adminapi.RevokeRequest, error) {
	var req adminapi.RevokeRequest
	if err := readAdminJSON(w, r, &req); err != nil {
		return req, err
	}
	n := 0
	for _, set := range []bool{req.UserID != "", req.ClientID != "", req.All} {
		if set {
			n++
		}
	}
	if n != 1 {
		return req, errInvalidRequest("name exactly one of user_id, client_id or all")
	}
	return req, nil
}

// revokeGrants revokes every grant that f selects and returns how many, and the users
// they belonged to. Each grant is revoked with RevokeGrant, as a replayed code or a
// reused refresh token revokes one, so whatever follows grant revocations (the
// revocation feed of JWT verifiers) follows these too.
func (s *Server) revokeGrants(ctx context.Context, f store.GrantFilter) (int, map[string]bool, error) {
	revoked, users := 0, map[string]bool{}
	for range revokePasses {
		gs, err := s.store.ListGrants(ctx, f)
		if err != nil || len(gs) == 0 {
			return revoked, users, err
		}
		errs := make([]error, len(gs))
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range min(revokeWorkers, len(gs)) {
			wg.Go(func() {
				for i := range jobs {
					errs[i] = s.store.RevokeGrant(ctx, gs[i].ID)
				}
			})
		}
		for i := range gs {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		for i, g := range gs {
			if errs[i] == nil {
				revoked++
				if g.UserID != "" { // client_credentials grants have no user, nor a vault entry
					users[g.UserID] = true
				}
			}
		}
		if err := errors.Join(errs...); err != nil {
			return revoked, users, err
		}
	}
	return revoked, users, nil
}

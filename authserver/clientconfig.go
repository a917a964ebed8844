package authserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/authserver/clientpolicy"
	"github.com/mcpauth/mcpauth/authserver/store"
)

// The RFC 7592 client configuration endpoint: a dynamically registered client reads
// (GET), replaces (PUT) or deletes (DELETE) its registration at the
// registration_client_uri it was given, <issuer>/oauth/register/<client_id>, with the
// registration access token it was given as bearer token.
//
// The token carries its client's ID (mcp_rat_<client_id>.<random>), so a valid token
// presented at another client's URI is told apart from an invalid one: 403, not 401
// (RFC 7592 §3). An update keeps the token: RFC 7592 §2.2 lets the server issue a new
// one, but a client whose update answer is lost would then hold a dead token and no way
// to manage its registration; the token is 256 random bits, stored as its HMAC only.

// sourceLimitError is the register flow's refusal of a source at its limit, carried
// to the handler so it can say when to retry.
type sourceLimitError struct{ retryAfter time.Duration }

func (e *sourceLimitError) Error() string { return "source at its registration limit" }

// registrationAuthError is a refused registration access token (RFC 6750 §3): 401 with a
// Bearer challenge, or 403 for a valid token that may not manage this registration.
type registrationAuthError struct {
	status int
	desc   string
	// missing: no token at all, so the challenge carries no error code (RFC 6750 §3.1).
	missing bool
}

func (e *registrationAuthError) Error() string { return e.desc }

// forbiddenUpdateFields may not appear in an update request (RFC 7592 §2.2: "The
// client MUST NOT include the registration_access_token, registration_client_uri,
// client_secret_expires_at, or client_id_issued_at fields").
var forbiddenUpdateFields = []string{"registration_access_token", "registration_client_uri", "client_secret_expires_at", "client_id_issued_at"}

// clientConfigURI is a client's registration_client_uri.
func (s *Server) clientConfigURI(id string) string {
	return s.endpoint(pathRegister + "/" + id)
}

// handleClientConfig serves GET, PUT and DELETE on a registration_client_uri.
func (s *Server) handleClientConfig(w http.ResponseWriter, r *http.Request) {
	if preflight(w, r) || !s.allowMethods(w, r, http.MethodGet, http.MethodPut, http.MethodDelete) {
		return
	}
	id := strings.TrimPrefix(r.URL.Path, s.prefix+pathRegister+"/")
	c, rat, err := s.authenticateRegistration(r, id)
	if err != nil {
		s.writeRegistrationError(w, r, err)
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.registrationResponse(c, rat))
	case http.MethodPut:
		resp, err := s.updateRegistration(w, r, c, rat)
		if err != nil {
			s.writeRegistrationError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	case http.MethodDelete:
		if err := s.deleteRegistration(r, c); err != nil {
			s.writeRegistrationError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	}
}

// authenticateRegistration checks the bearer registration access token against the
// registration it names and returns that registration and the token. RFC 7592 §3: an
// invalid token, or one whose client does not exist, is 401; a valid token for a
// client that may not manage the registration at this URI, 403.
func (s *Server) authenticateRegistration(r *http.Request, id string) (store.Client, string, error) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return store.Client{}, "", &registrationAuthError{status: http.StatusUnauthorized, missing: true,
			desc: "the registration access token is required as a Bearer token"}
	}
	invalid := &registrationAuthError{status: http.StatusUnauthorized, desc: "the registration access token is invalid or its client is gone"}
	owner, ok := parseRegistrationToken(tok)
	if !ok {
		return store.Client{}, "", invalid
	}
	c, err := s.store.GetClient(r.Context(), owner)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Client{}, "", invalid
	case err != nil:
		return store.Client{}, "", err
	case !s.now().Before(c.ExpiresAt), c.RegistrationTokenHash == "",
		!equalHash(s.keys.hash(labelRegistrationToken, tok), c.RegistrationTokenHash):
		return store.Client{}, "", invalid
	case owner != id:
		return store.Client{}, "", &registrationAuthError{status: http.StatusForbidden,
			desc: "the registration access token belongs to another client"}
	case c.Trusted:
		return store.Client{}, "", &registrationAuthError{status: http.StatusForbidden,
			desc: "this client is managed by the server's administrator"}
	}
	return c, tok, nil
}

// writeRegistrationError answers as RFC 7592 §3 says: RFC 6750 errors for the token,
// RFC 7591 §3.2.2 errors for the metadata.
func (s *Server) writeRegistrationError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *registrationAuthError
	if !errors.As(err, &ae) {
		s.writeError(w, r, err)
		return
	}
	code := "invalid_token"
	if ae.status == http.StatusForbidden {
		code = "insufficient_scope"
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcpauth", error="insufficient_scope"`)
	} else if ae.missing {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcpauth"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcpauth", error="invalid_token", error_description="`+ae.desc+`"`)
	}
	writeJSON(w, ae.status, map[string]string{"error": code, "error_description": ae.desc})
}

// updateRequest is an RFC 7592 §2.2 client update request: every metadata field, the
// client's ID and optionally its current secret.
type updateRequest struct {
	registrationRequest
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// updateRegistration replaces c's metadata with the request's, validated as a
// registration is ("Omitted fields MUST be treated as null or empty values"), and
// keeps what the client cannot choose: ID, creation, source, last use, expiry, the
// registration access token, and the secret unless the auth method changes kind (a
// public client turning confidential gets a new secret, shown in this answer only).
func (s *Server) updateRegistration(w http.ResponseWriter, r *http.Request, c store.Client, rat string) (*registrationResponse, error) {
	req, err := readUpdate(w, r)
	if err != nil {
		return nil, err
	}
	if req.ClientID != c.ID {
		return nil, metadataError("client_id must be the client's own ID")
	}
	if req.ClientSecret != "" && (c.SecretHash == "" || !equalHash(s.keys.hash(labelClientSecret, req.ClientSecret), c.SecretHash)) {
		return nil, metadataError("client_secret does not match the issued secret; a client cannot choose its secret")
	}
	if oe := s.validateRegistration(&req.registrationRequest); oe != nil {
		return nil, oe
	}
	next := c
	next.Name, next.RedirectURIs, next.GrantTypes, next.ResponseTypes = req.ClientName, req.RedirectURIs, req.GrantTypes, req.ResponseTypes
	next.TokenEndpointAuthMethod, next.Scope, next.ApplicationType = req.TokenEndpointAuthMethod, req.Scope, req.ApplicationType
	next.ClientURI, next.LogoURI = req.ClientURI, req.LogoURI
	var secret string
	switch {
	case next.TokenEndpointAuthMethod == AuthMethodNone:
		next.SecretHash = ""
	case next.SecretHash == "":
		secret = prefixSecret + randomString(secretBytes)
		next.SecretHash = s.keys.hash(labelClientSecret, secret)
	}
	if err := s.reapproveUpdate(r.Context(), c, next); err != nil {
		return nil, err
	}
	if err := s.store.UpdateClient(r.Context(), next); errors.Is(err, store.ErrNotFound) {
		return nil, &registrationAuthError{status: http.StatusUnauthorized, desc: "the registration access token is invalid or its client is gone"}
	} else if err != nil {
		return nil, err
	}
	s.log.InfoContext(r.Context(), "registration updated (RFC 7592)", "client", c.ID)
	resp := s.registrationResponse(next, rat)
	resp.ClientSecret = secret
	return resp, nil
}

// reapproveUpdate keeps approval mode's promise across an update: an administrator
// approved the name and redirect URIs they were shown, so an update that changes
// either puts an approved client back on the pending list (with what it now says),
// and refreshes what a pending one shows. A denial stands. It runs before the update
// is stored, so a failure here leaves the registration as it was.
func (s *Server) reapproveUpdate(ctx context.Context, prev, next store.Client) error {
	if !s.opts.ClientPolicy.NeedsApproval(clientpolicy.Dynamic) ||
		(prev.Name == next.Name && slices.Equal(prev.RedirectURIs, next.RedirectURIs)) {
		return nil
	}
	rec, err := s.store.GetApproval(ctx, prev.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // never asked: the first login asks, with what the client says then
	case err != nil:
		return fmt.Errorf("get approval: %w", err)
	case rec.Status == store.ApprovalDenied:
		return nil
	}
	now := s.now()
	rec.Name, rec.RedirectURIs = next.Name, slices.Clone(next.RedirectURIs)
	if rec.Status == store.ApprovalApproved {
		rec.Status, rec.RequestedAt, rec.DecidedAt, rec.DecidedBy = store.ApprovalPending, now, time.Time{}, ""
		rec.ExpiresAt = now.Add(DefaultPendingApprovalTTL)
		s.log.InfoContext(ctx, "approved client changed its registration (RFC 7592): pending again", "client_id", prev.ID)
	}
	if err := s.store.SetApproval(ctx, rec); err != nil {
		return fmt.Errorf("set approval: %w", err)
	}
	return nil
}

// readUpdate decodes an update request, refusing the fields a client must not send.
func readUpdate(w http.ResponseWriter, r *http.Request) (*updateRequest, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, metadataError("content type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errBodyTooLarge
		}
		return nil, errInvalidRequest("cannot read the request body")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, metadataError("the body is not a JSON object of client metadata")
	}
	for _, f := range forbiddenUpdateFields {
		if _, ok := fields[f]; ok {
			return nil, metadataError(f + " may not be sent in an update (RFC 7592 section 2.2)")
		}
	}
	var req updateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, metadataError("the body is not a JSON object of client metadata")
	}
	return &req, nil
}

// deleteRegistration revokes every grant of the client, then deletes it and its
// approval-mode record, if any (RFC 7592 §2.3: the server "SHOULD invalidate all
// associated access tokens"). Should the revocation fail, nothing is deleted and the
// client can retry.
func (s *Server) deleteRegistration(r *http.Request, c store.Client) error {
	ctx := r.Context()
	revoked, _, err := s.revokeGrants(ctx, store.GrantFilter{ClientID: c.ID})
	if err != nil {
		return err
	}
	if err := s.store.DeleteClient(ctx, c.ID); err != nil {
		return err
	}
	// Its approval-mode record would only linger on the lists: its ID is never reused.
	if err := s.store.DeleteApproval(ctx, c.ID); err != nil {
		s.log.WarnContext(ctx, "drop the approval record of a deleted registration", "client_id", c.ID, "err", err)
	}
	s.log.InfoContext(ctx, "registration deleted (RFC 7592)", "client", c.ID, "grants_revoked", revoked)
	return nil
}

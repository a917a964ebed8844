package authserver

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
	"github.com/mcpauth/mcpauth/authserver/clientpolicy"
	"github.com/mcpauth/mcpauth/authserver/store"
)

// handleAdminApprovals lists approval records (GET ?status=pending) or decides on one
// client (POST {"client_id": C, "decision": "approve"|"deny"}).
func (s *Server) handleAdminApprovals(w http.ResponseWriter, r *http.Request) (any, error) {
	switch r.Method {
	case http.MethodGet:
		return s.listApprovals(r)
	case http.MethodPost:
		return s.decideApproval(w, r)
	}
	w.Header().Set("Allow", "GET, POST")
	return nil, newError(http.StatusMethodNotAllowed, errCodeInvalidRequest, "method not allowed")
}

func (s *Server) listApprovals(r *http.Request) (any, error) {
	q := r.URL.Query()
	if name, ok := singleValues(q); !ok {
		return nil, errInvalidRequest("parameter " + name + " is repeated")
	}
	status := store.ApprovalStatus(q.Get("status"))
	switch status {
	case "", store.ApprovalPending, store.ApprovalApproved, store.ApprovalDenied:
	default:
		return nil, errInvalidRequest("status must be pending, approved or denied")
	}
	as, err := s.store.ListApprovals(r.Context(), status)
	if err != nil {
		return nil, err
	}
	out := adminapi.ApprovalList{Approvals: make([]adminapi.Approval, 0, len(as))}
	for _, a := range as {
		out.Approvals = append(out.Approvals, wireApproval(a))
	}
	return out, nil
}

func wireApproval(a store.ClientApproval) adminapi.Approval {
	return adminapi.Approval{ClientID: a.ClientID, Status: string(a.Status), Kind: a.Kind, ClientName: a.Name,
		RedirectURIs: a.RedirectURIs, RequestedAt: a.RequestedAt, DecidedAt: a.DecidedAt, DecidedBy: a.DecidedBy,
		ExpiresAt: a.ExpiresAt}
}

// decideApproval records an administrator's decision. A denial also revokes the
// client's grants: a client the administrator refuses should not keep the sessions
// it got before approval mode was on.
func (s *Server) decideApproval(w http.ResponseWriter, r *http.Request) (any, error) {
	req, err := readApprovalRequest(w, r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if req.Decision == adminapi.DecisionDeny && !s.opts.ClientPolicy.NeedsApproval(clientpolicy.Dynamic) {
		// Outside approval mode nothing reads the decision: the client could log in
		// again at once, so recording it would only mislead.
		return nil, newError(http.StatusConflict, errCodeInvalidRequest,
			"clientPolicy.requireApproval is off, so a denial would not stop this client: turn approval mode on, or revoke its grants with mcpauth admin revoke --client")
	}
	base, err := s.approvalSubject(r, req.ClientID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	base.Status, base.DecidedAt, base.DecidedBy = store.ApprovalApproved, now, "admin API"
	if req.Decision == adminapi.DecisionDeny {
		base.Status = store.ApprovalDenied
	}
	base.ExpiresAt = s.registrationLapse(now)
	if err := s.store.SetApproval(ctx, base); err != nil {
		return nil, err
	}
	res := adminapi.ApprovalResult{Approval: wireApproval(base)}
	if base.Status == store.ApprovalDenied {
		res.Revoked, _, err = s.revokeGrants(ctx, store.GrantFilter{ClientID: base.ClientID})
		s.metrics.adminRevoke.WithLabelValues("client").Add(float64(res.Revoked))
	}
	s.log.InfoContext(ctx, "admin approval decision", "client_id", base.ClientID, "decision", req.Decision,
		"revoked", res.Revoked, "err", err)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// approvalSubject checks that id names a client approval mode can hold, and returns
// what is known of it: its pending record, else its registration. Pre-registered
// clients need no approval; a dynamic client must exist (its IDs are random, so one
// cannot be approved ahead); a metadata-document client may be approved ahead, if its
// domain is allowed.
func (s *Server) approvalSubject(r *http.Request, id string) (store.ClientApproval, error) {
	ctx := r.Context()
	a := store.ClientApproval{ClientID: id}
	if prev, err := s.store.GetApproval(ctx, id); err == nil {
		a = prev
	} else if !errors.Is(err, store.ErrNotFound) {
		return a, err
	}
	switch {
	case isMetadataClientID(id):
		if !s.opts.ClientPolicy.AllowsMetadataDocument(id) {
			return a, errInvalidRequest("the client's domain is not in clientPolicy.metadataDocumentDomains: it cannot log in whatever the decision")
		}
		a.Kind = "metadata-document"
	case !s.storedClientID(ctx, id):
		return a, errInvalidRequest("client " + id + " is pre-registered: it needs no approval")
	default:
		c, err := s.store.GetClient(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound) && a.Status == "":
			return a, newError(http.StatusNotFound, "not_found", "no dynamically registered client "+id)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return a, err
		case err == nil:
			a.Name, a.RedirectURIs = c.Name, c.RedirectURIs
		}
		a.Kind = "dynamic"
	}
	if a.RequestedAt.IsZero() {
		a.RequestedAt = s.now()
	}
	return a, nil
}

// readApprovalRequest decodes an ApprovalRequest strictly.
func readApprovalRequest(w http.ResponseWriter, r *http.Request) (adminapi.ApprovalRequest, error) {
	var req adminapi.ApprovalRequest
	if mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return req, errInvalidRequest("content type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, errBodyTooLarge
		}
		return req, errInvalidRequest("malformed JSON body: " + err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, errInvalidRequest("malformed JSON body: more than one value")
	}
	switch {
	case req.ClientID == "" || len(req.ClientID) > 2000:
		return req, errInvalidRequest("client_id is required")
	case req.Decision != adminapi.DecisionApprove && req.Decision != adminapi.DecisionDeny:
		return req, errInvalidRequest("decision must be approve or deny")
	}
	return req, nil
}

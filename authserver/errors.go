package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// OAuth error codes (RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2, RFC 8707 §2).
const (
	errCodeInvalidRequest          = "invalid_request"
	errCodeInvalidClient           = "invalid_client"
	errCodeInvalidGrant            = "invalid_grant"
	errCodeUnauthorizedClient      = "unauthorized_client"
	errCodeUnsupportedGrantType    = "unsupported_grant_type"
	errCodeUnsupportedResponseType = "unsupported_response_type"
	errCodeInvalidScope            = "invalid_scope"
	errCodeInvalidTarget           = "invalid_target"
	errCodeAccessDenied            = "access_denied"
	errCodeServerError             = "server_error"
	errCodeTemporarilyUnavailable  = "temporarily_unavailable"
	errCodeInvalidRedirectURI      = "invalid_redirect_uri"
	errCodeInvalidClientMetadata   = "invalid_client_metadata"
	// RFC 8628 §3.5: the device polls the token endpoint.
	errCodeAuthorizationPending = "authorization_pending"
	errCodeSlowDown             = "slow_down"
	errCodeExpiredToken         = "expired_token"
)

// oauthError is an error the client is told about: an RFC error code, a description
// (ASCII, no quotes or backslashes, RFC 6749 §5.2) and the HTTP status it travels with.
type oauthError struct {
	Status      int
	Code        string
	Description string
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func newError(status int, code, desc string) *oauthError {
	return &oauthError{Status: status, Code: code, Description: desc}
}

func errInvalidRequest(desc string) *oauthError {
	return newError(http.StatusBadRequest, errCodeInvalidRequest, desc)
}

func errInvalidGrant(desc string) *oauthError {
	return newError(http.StatusBadRequest, errCodeInvalidGrant, desc)
}

// errInvalidClient is always 401 with a Basic challenge: RFC 6749 §5.2 requires it when
// the client tried the Authorization header, and answering the same way otherwise tells
// an attacker nothing about which methods a client uses.
func errInvalidClient(desc string) *oauthError {
	return newError(http.StatusUnauthorized, errCodeInvalidClient, desc)
}

// errBodyTooLarge is sent as 413: the RFCs have no code for it, so the status carries
// the meaning and the JSON stays in the RFC's shape.
var errBodyTooLarge = newError(http.StatusRequestEntityTooLarge, errCodeInvalidRequest, "request body too large")

// errUnavailable is what a store outage looks like to a client: retry later.
var errUnavailable = newError(http.StatusServiceUnavailable, errCodeTemporarilyUnavailable, "the service is temporarily unavailable, retry later")

// asOAuthError maps any error to the one a client sees. Store outages become 503
// temporarily_unavailable; anything unexpected becomes 500 server_error, whose cause
// stays in the log, never in the body.
func asOAuthError(err error) *oauthError {
	var oe *oauthError
	switch {
	case errors.As(err, &oe):
		return oe
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errUnavailable
	}
	return newError(http.StatusInternalServerError, errCodeServerError, "internal error")
}

// writeError writes err as RFC 6749 §5.2 JSON.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	oe := asOAuthError(err)
	if oe.Status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "route", s.routeOf(r), "err", err)
	}
	if oe.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcpauth", charset="UTF-8"`)
	}
	body := map[string]string{"error": oe.Code}
	if oe.Description != "" {
		body["error_description"] = safeDescription(oe.Description)
	}
	writeJSON(w, oe.Status, body)
}

// safeDescription keeps an error_description to the characters RFC 6749 §5.2 allows
// (%x20-21 / %x23-5B / %x5D-7E): some descriptions quote what the client sent, such as
// a repeated parameter's name, and a client must be able to show them as they are.
func safeDescription(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}

// writeJSON writes v with the headers every OAuth JSON response needs: RFC 6749 §5.1
// requires no-store (and Pragma for HTTP/1.0 caches) on anything carrying tokens, and
// nothing we answer should be cached by an intermediary.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// allowMethods answers 405 with an Allow header (RFC 9110 §15.5.6) unless r uses one of
// the methods. It returns whether the handler should go on.
func (s *Server) allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	s.writeError(w, r, newError(http.StatusMethodNotAllowed, errCodeInvalidRequest, "method not allowed"))
	return false
}

// parseForm reads an application/x-www-form-urlencoded body of at most limit bytes into
// r.PostForm. Parameters in the query string are not read: RFC 6749 §3.2 sends the
// token request in the body, and a token in a URL ends up in logs.
func parseForm(w http.ResponseWriter, r *http.Request, limit int64) error {
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
		return errInvalidRequest("content type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errBodyTooLarge
		}
		return errInvalidRequest("malformed form body")
	}
	return nil
}

// singleValues checks RFC 6749 §3.1/§3.2: "Request and response parameters MUST NOT be
// included more than once." It returns the first repeated name, if any.
func singleValues(v map[string][]string, except ...string) (string, bool) {
	for name, vals := range v {
		if len(vals) > 1 && !slices.Contains(except, name) {
			return name, false
		}
	}
	return "", true
}

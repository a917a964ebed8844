package authserver

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// cursorPrefix starts every revocation feed cursor, so that the format can change.
const cursorPrefix = "v1."

// cursorOverlap is how far a cursor reaches back before the newest entry it saw:
// should the feed's clock step back (a Redis failover), entries recorded meanwhile are
// still returned. Followers see those entries twice and ignore the repeat.
const cursorOverlap = time.Second

// maxCursorAhead bounds how far in the future a cursor may point: one that far ahead
// was not made by us, and would silently hide every revocation until then.
const maxCursorAhead = 5 * time.Minute

// handleJWKS serves the public keys that verify our JWT access tokens (RFC 7517 §5),
// every key from the moment it is in the signing keys file until its publishUntil.
// Verifiers cache it; a short max-age makes a new key reach them before it signs
// (rotation publishes keys at least an access-token lifetime ahead).
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if preflight(w, r) || !s.allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	body := []byte(`{"keys":[]}`)
	if s.signing != nil {
		var err error
		if body, err = s.signing.jwks(s.now()); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// revocationsResponse is the revocation feed's answer (docs/tokens.md).
type revocationsResponse struct {
	Revocations []revocationEntry `json:"revocations"`
	Cursor      string            `json:"cursor"`
	Retention   int64             `json:"retention"` // seconds
}

// revocationEntry names a revoked grant (every token of it) or one access token.
type revocationEntry struct {
	GrantID string `json:"gid,omitempty"`
	TokenID string `json:"jti,omitempty"`
	At      int64  `json:"at"`
}

// handleRevocations is the revocation feed for resource servers that verify JWT
// access tokens on their own: every grant revoked (by its owner, a replayed code, a
// reused refresh token, an administrator) and every JWT revoked by RFC 7009, since
// the caller's cursor. Callers authenticate as for introspection: confidential
// clients, with HTTP Basic (a GET has no form body).
func (s *Server) handleRevocations(w http.ResponseWriter, r *http.Request) {
	if !s.allowMethods(w, r, http.MethodGet) {
		return
	}
	caller, err := s.authenticateClient(r, authAnySecret)
	if err == nil && !caller.confidential() {
		err = errInvalidClient("the revocation feed requires a confidential client")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	if len(q["since"]) > 1 {
		s.writeError(w, r, errInvalidRequest("since is repeated"))
		return
	}
	since, ok := s.parseCursor(q.Get("since"))
	if !ok {
		s.writeError(w, r, errInvalidRequest("since is not a cursor this server issued"))
		return
	}
	entries, err := s.store.Revocations(r.Context(), since)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.feedResponse(entries, since))
}

func (s *Server) feedResponse(entries []store.Revocation, since time.Time) *revocationsResponse {
	resp := &revocationsResponse{
		Revocations: make([]revocationEntry, 0, len(entries)),
		Retention:   int64(FeedRetention(s.opts.AccessTokenTTL) / time.Second),
	}
	newest := since
	for _, e := range entries {
		entry := revocationEntry{At: e.At.Unix()}
		if e.TokenID != "" {
			entry.TokenID = e.TokenID
		} else {
			entry.GrantID = e.GrantID
		}
		resp.Revocations = append(resp.Revocations, entry)
		if e.At.After(newest) {
			newest = e.At
		}
	}
	next := since
	if newest.After(since) {
		next = newest.Add(-cursorOverlap)
		if next.Before(since) {
			next = since
		}
	}
	ms := int64(0) // from the start
	if !next.IsZero() {
		ms = next.UnixMilli()
	}
	resp.Cursor = cursorPrefix + strconv.FormatInt(ms, 10)
	return resp
}

// parseCursor reads a cursor; empty means from the start (every retained entry).
func (s *Server) parseCursor(c string) (time.Time, bool) {
	if c == "" {
		return time.Time{}, true
	}
	digits, ok := strings.CutPrefix(c, cursorPrefix)
	if !ok || digits == "" || len(digits) > 15 || strings.TrimLeft(digits, "0123456789") != "" {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	t := time.UnixMilli(ms)
	if t.After(s.now().Add(maxCursorAhead)) {
		return time.Time{}, false
	}
	if ms == 0 {
		return time.Time{}, true
	}
	return t, true
}

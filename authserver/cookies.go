package authserver

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// cookieNames are the names and Secure flag of our cookies; see the package doc for why
// they depend on the issuer's scheme.
type cookieNames struct {
	flow    string
	consent string
	user    string
	secure  bool
}

func newCookieNames(https bool) cookieNames {
	if https {
		// __Host-: the browser only accepts it Secure, with Path=/ and no Domain, so a
		// sibling subdomain cannot plant or overwrite it (RFC 6265bis §4.1.3.2).
		return cookieNames{flow: "__Host-mcpauth_flow", consent: "__Host-mcpauth_consent", user: "__Host-mcpauth_user", secure: true}
	}
	return cookieNames{flow: "mcpauth_flow", consent: "mcpauth_consent", user: "mcpauth_user"}
}

// maxConsentCookie keeps the consent cookie under the 4096-byte limit browsers apply to
// a cookie's name and value together.
const maxConsentCookie = 3800

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   int(maxAge / time.Second),
		Secure:   s.cookies.secure,
		HttpOnly: true,
		// Lax: sent on the top-level GET navigation back from the upstream provider,
		// never on a cross-site POST (the consent form's CSRF defence in depth).
		SameSite: http.SameSiteLaxMode,
	})
}

// flowCookie returns the browser's flow-binding value, creating one when the browser
// has none. An existing value is reused so that two logins running in two tabs of one
// browser do not invalidate each other; the cookie is set again either way, so it lives
// PendingTTL from the latest step.
func (s *Server) flowCookie(w http.ResponseWriter, r *http.Request) string {
	v, ok := s.readFlowCookie(r)
	if !ok {
		v = randomString(secretBytes)
	}
	s.setCookie(w, s.cookies.flow, v, s.opts.PendingTTL)
	return v
}

// readFlowCookie returns the flow cookie if it has the shape we issue.
func (s *Server) readFlowCookie(r *http.Request) (string, bool) {
	c, err := r.Cookie(s.cookies.flow)
	if err != nil || len(c.Value) != randomPartLen || !isBase64URL(c.Value) {
		return "", false
	}
	return c.Value, true
}

// consentEntry is one remembered approval: a client, the scopes approved, and when the
// approval lapses.
type consentEntry struct {
	ClientID string `json:"c"`
	Scope    string `json:"s,omitempty"`
	Expires  int64  `json:"e"`
}

// readConsents returns the browser's remembered approvals that are still valid. A
// cookie whose signature does not verify is ignored as a whole.
func (s *Server) readConsents(r *http.Request) []consentEntry {
	c, err := r.Cookie(s.cookies.consent)
	if err != nil {
		return nil
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return nil
	}
	want := base64.RawURLEncoding.EncodeToString(s.keys.sign(s.consentLabel(), payload))
	if !equalHash(sig, want) {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil
	}
	var entries []consentEntry
	if json.Unmarshal(raw, &entries) != nil {
		return nil
	}
	now := s.now().Unix()
	return slices.DeleteFunc(entries, func(e consentEntry) bool { return e.Expires <= now })
}

// consentRemembered reports whether this browser approved the client for at least
// these scopes.
func (s *Server) consentRemembered(r *http.Request, clientID string, scopes []string) bool {
	for _, e := range s.readConsents(r) {
		if e.ClientID == clientID && subset(scopes, splitScope(e.Scope)) {
			return true
		}
	}
	return false
}

// rememberConsent adds (or widens) the client's entry and writes the cookie back,
// dropping the oldest entries when it grows too large.
func (s *Server) rememberConsent(w http.ResponseWriter, r *http.Request, clientID string, scopes []string) {
	entries := s.readConsents(r)
	for i, e := range entries {
		if e.ClientID == clientID {
			scopes = append(splitScope(e.Scope), scopes...)
			entries = slices.Delete(entries, i, i+1)
			break
		}
	}
	exp := s.now().Add(s.opts.ConsentTTL).Unix()
	entries = append(entries, consentEntry{ClientID: clientID, Scope: joinScope(splitScope(joinScope(scopes))), Expires: exp})
	for {
		value := s.encodeConsents(entries)
		if len(s.cookies.consent)+len(value) <= maxConsentCookie || len(entries) == 1 {
			s.setCookie(w, s.cookies.consent, value, s.opts.ConsentTTL)
			return
		}
		entries = entries[1:]
	}
}

func (s *Server) encodeConsents(entries []consentEntry) string {
	raw, _ := json.Marshal(entries)
	payload := base64.RawURLEncoding.EncodeToString(raw)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.keys.sign(s.consentLabel(), payload))
}

// consentLabel binds the consent cookie's signature to this issuer. __Host- cookies
// are Path=/, so servers for several issuers on one host (paths /a and /b) see the
// same cookie; one issuer must not honour approvals given at another.
func (s *Server) consentLabel() string { return "consent\x00" + s.issuer }

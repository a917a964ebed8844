package authserver

import (
	"net/url"
	"slices"
	"strings"
)

// validScopeToken: RFC 6749 §3.3, scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// splitScope splits a space-delimited scope string into distinct tokens, in order.
func splitScope(scope string) []string {
	var out []string
	for _, s := range strings.Fields(scope) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// joinScope is the inverse of splitScope.
func joinScope(scopes []string) string { return strings.Join(scopes, " ") }

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// grantableScope decides the scope of an authorization request: the requested scopes,
// each one supported by the server and allowed to the client, or the default scopes
// when none are requested (RFC 6749 §3.3: the server "MUST either process the request
// using a pre-defined default value or fail"). The MCP conformance tool sends no scope,
// so a default is what makes it work.
func (s *Server) grantableScope(c *client, requested string) ([]string, *oauthError) {
	if strings.ContainsAny(requested, "\t\r\n") {
		return nil, newError(400, errCodeInvalidScope, "scope must be space-delimited")
	}
	scopes := splitScope(requested)
	for _, sc := range scopes {
		if !validScopeToken(sc) {
			return nil, newError(400, errCodeInvalidScope, "malformed scope")
		}
	}
	allowed := s.opts.ScopesSupported
	if len(c.Scopes) > 0 {
		allowed = intersect(c.Scopes, allowed)
	}
	if len(scopes) == 0 {
		return s.limitScope(c, intersect(s.opts.DefaultScopes, allowed), false)
	}
	if !subset(scopes, allowed) {
		return nil, newError(400, errCodeInvalidScope, "requested scope is not allowed for this client")
	}
	return s.limitScope(c, scopes, true)
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// normalizeResource checks an RFC 8707 resource indicator and returns it in the form
// tokens are bound to. §2: "an absolute URI ... MUST NOT include a fragment component".
// Scheme and host are compared case-insensitively (RFC 3986 §6.2.2.1), so they are
// lower-cased here; the rest is kept as sent.
func normalizeResource(raw string) (string, bool) {
	if raw == "" || strings.Contains(raw, "#") || len(raw) > 2000 {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil {
		return "", false
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return u.String(), true
}

// normalizeResources applies normalizeResource to each, dropping duplicates.
func normalizeResources(raw []string) ([]string, *oauthError) {
	var out []string
	for _, r := range raw {
		n, ok := normalizeResource(r)
		if !ok {
			return nil, newError(400, errCodeInvalidTarget, "resource must be an absolute URI without a fragment (RFC 8707)")
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

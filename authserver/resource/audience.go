package resource

import (
	"net/url"
	"slices"
	"strings"
)

// resourceID is a resource URI reduced to what decides whether two of them name the
// same resource.
type resourceID struct {
	scheme, host, path, query string
}

// parseResourceID normalizes a resource URI the way RFC 3986 §6.2.2–6.2.3 allows for
// http(s): scheme and host compared case-insensitively, a default port is the same as
// none, and an empty path is "/". The path and query are otherwise compared exactly,
// so https://h/mcp and https://h/mcp/ are different resources.
func parseResourceID(raw string) (resourceID, bool) {
	u, err := url.Parse(raw)
	if err != nil || !isHTTP(u) || u.Fragment != "" {
		return resourceID{}, false
	}
	id := resourceID{
		scheme: strings.ToLower(u.Scheme),
		host:   strings.ToLower(u.Host),
		path:   u.EscapedPath(),
		query:  u.RawQuery,
	}
	if port := u.Port(); (id.scheme == "https" && port == "443") || (id.scheme == "http" && port == "80") {
		id.host = strings.TrimSuffix(id.host, ":"+port)
	}
	if id.path == "" {
		id.path = "/"
	}
	return id, true
}

// origin is the bare origin of id, as a resource.
func (id resourceID) origin() resourceID {
	return resourceID{scheme: id.scheme, host: id.host, path: "/"}
}

// audienceMatches reports whether one of the token's audiences is this resource.
// RFC 8707 §2 and the MCP specification: "MCP servers MUST validate that access
// tokens were issued specifically for them as the intended audience". A token with no
// audience at all was issued for no resource in particular, and is refused.
func (v *Verifier) audienceMatches(aud []string) bool {
	for _, a := range aud {
		id, ok := parseResourceID(a)
		if !ok {
			continue
		}
		if id == v.resourceID || (v.cfg.AcceptOriginAudience && id == v.resourceID.origin()) {
			return true
		}
	}
	return false
}

// effectiveScopes is granted plus every scope a granted scope implies, transitively
// (Config.ScopeImplies).
func (v *Verifier) effectiveScopes(granted []string) []string {
	out := slices.Clone(granted)
	for i := 0; i < len(out); i++ { // out grows while it is walked: a breadth-first closure
		for _, narrow := range v.cfg.ScopeImplies[out[i]] {
			if !slices.Contains(out, narrow) {
				out = append(out, narrow)
			}
		}
	}
	return out
}

// missingScopes returns the scopes of need that granted does not cover.
func (v *Verifier) missingScopes(granted, need []string) []string {
	if len(need) == 0 {
		return nil
	}
	have := v.effectiveScopes(granted)
	var missing []string
	for _, s := range need {
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

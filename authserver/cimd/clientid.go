package cimd

import (
	"net/url"
	"strings"
)

// MaxClientIDLength bounds a Client Identifier URL. The draft sets no limit; this one
// keeps log lines, cache keys and consent pages sane.
const MaxClientIDLength = 2048

// IsClientIDURL reports whether clientID has the form of a Client Identifier URL, so
// the server should resolve it with Fetch rather than look it up as a registered
// client. It does not validate the URL: Fetch does, and refuses a malformed one.
// Registered client IDs never start with https:// (config refuses them), so the form
// alone tells the two apart.
func IsClientIDURL(clientID string) bool {
	return strings.HasPrefix(clientID, "https://")
}

// ValidateClientID checks clientID against the draft's rules for a Client Identifier
// URL (§"Client Identifier URL"): https scheme; no userinfo; a path; no "." or ".."
// path segments; no fragment. A query is allowed (the draft says SHOULD NOT). The URL
// must also be in canonical form (it re-serializes to the same bytes), because the
// document's client_id is compared with it byte for byte and the request must go to
// exactly that URL. The error is an *Error of kind ErrInvalidClientID.
func ValidateClientID(clientID string) error {
	bad := func(reason string) error {
		return &Error{ClientID: clientID, Kind: ErrInvalidClientID, Reason: reason}
	}
	if len(clientID) > MaxClientIDLength {
		return bad("longer than 2048 bytes")
	}
	if !strings.HasPrefix(clientID, "https://") {
		return bad("must start with https://")
	}
	u, err := url.Parse(clientID)
	if err != nil {
		return bad("not a valid URL")
	}
	switch {
	case strings.Contains(clientID, "#"):
		return bad("must not contain a fragment")
	case u.User != nil:
		return bad("must not contain user info")
	case u.Hostname() == "":
		return bad("must have a host")
	case u.Path == "":
		return bad("must contain a path")
	case u.String() != clientID:
		return bad("must be in canonical form (percent-encode reserved characters; no spaces)")
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		// RFC 3986 §6.2.2.2: %2E is a dot too, and would be removed like one.
		s := strings.ReplaceAll(strings.ToLower(seg), "%2e", ".")
		if s == "." || s == ".." {
			return bad(`must not contain "." or ".." path segments`)
		}
	}
	return nil
}

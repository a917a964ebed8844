package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DomainPattern is a host name ("example.com": that host only) or a wildcard over its
// subdomains ("*.example.com": a.example.com, a.b.example.com, not example.com).
type DomainPattern struct {
	suffix   string // ".example.com" for a wildcard
	exact    string // "example.com" otherwise
	wildcard bool
}

// ParseDomainPattern parses a domain pattern. A wildcard must be the whole first label
// and be followed by at least two labels ("*.com" would allow anyone).
func ParseDomainPattern(s string) (DomainPattern, error) {
	lower := strings.ToLower(s)
	rest, wildcard := strings.CutPrefix(lower, "*.")
	switch {
	case s == "":
		return DomainPattern{}, errors.New("domain pattern is empty")
	case strings.Contains(rest, "*"):
		return DomainPattern{}, fmt.Errorf("domain pattern %q: a wildcard may only be the first label (*.example.com)", s)
	case !validHostname(rest):
		return DomainPattern{}, fmt.Errorf("domain pattern %q is not a host name (letters, digits, '-' and dots; no scheme, port or path)", s)
	case wildcard && !strings.Contains(rest, "."):
		return DomainPattern{}, fmt.Errorf("domain pattern %q: a wildcard needs at least two labels after it", s)
	}
	if wildcard {
		return DomainPattern{suffix: "." + rest, wildcard: true}, nil
	}
	return DomainPattern{exact: rest}, nil
}

// Match reports whether the lower-case host matches.
func (d DomainPattern) Match(host string) bool {
	if d.wildcard {
		return len(host) > len(d.suffix) && strings.HasSuffix(host, d.suffix)
	}
	return host == d.exact
}

func validHostname(s string) bool {
	if s == "" || len(s) > 253 || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// RedirectPattern matches redirect URIs. It is compared part by part, never as one
// string, so that "https://*.example.com/*" cannot match
// "https://evil.test/.example.com/":
//
//   - the scheme is compared exactly (case-insensitively);
//   - for http and https, the host is a DomainPattern (so "*.example.com" allows
//     subdomains), the port is compared exactly, or "*" allows any; a pattern without
//     a port on a loopback host (127.0.0.1, [::1], localhost) allows any port, as
//     RFC 8252 §7.3 has native apps pick one at run time;
//   - the rest (path and query, or everything after "scheme:" for a private-use
//     scheme such as com.example.app:/cb) is compared exactly, or as a prefix when the
//     pattern ends with "*".
//
// No other "*" is allowed; a pattern never has a fragment or user info.
type RedirectPattern struct {
	raw    string
	scheme string
	web    bool
	host   DomainPattern
	port   string // "" none, "*" any
	rest   string // path?query, or the opaque part, without the trailing "*"
	prefix bool
}

// ParseRedirectPattern parses a redirect URI pattern (see RedirectPattern).
func ParseRedirectPattern(s string) (RedirectPattern, error) {
	bad := func(why string) (RedirectPattern, error) {
		return RedirectPattern{}, fmt.Errorf("redirect URI pattern %q: %s", s, why)
	}
	if s == "" {
		return bad("empty")
	}
	if strings.Contains(s, "#") || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad("no fragment, spaces or control characters")
	}
	scheme, after, ok := strings.Cut(s, ":")
	if !ok || !validScheme(scheme) {
		return bad("must start with a scheme (https:, http:, or an app's private-use scheme)")
	}
	p := RedirectPattern{raw: s, scheme: strings.ToLower(scheme)}
	body, prefix := strings.CutSuffix(after, "*")
	p.prefix = prefix
	if p.scheme != "http" && p.scheme != "https" {
		if strings.Contains(body, "*") {
			return bad("'*' may only end the pattern")
		}
		if body == "" && !prefix {
			return bad("nothing after the scheme")
		}
		p.rest = body
		return p, nil
	}
	p.web = true
	hostport, ok := strings.CutPrefix(body, "//")
	if !ok {
		return bad("an http(s) pattern needs //host")
	}
	authority, path := hostport, ""
	if i := strings.IndexAny(hostport, "/?"); i >= 0 {
		authority, path = hostport[:i], hostport[i:]
	} else if prefix {
		// "https://host*" would let the star run into the host.
		return bad("'*' must follow the host's '/'")
	}
	if strings.Contains(authority, "@") {
		return bad("no user info")
	}
	if strings.Contains(path, "*") {
		return bad("'*' may only end the pattern")
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.Index(authority, "]")
		if end < 0 {
			return bad("unclosed IPv6 literal")
		}
		host, port = authority[:end+1], strings.TrimPrefix(authority[end+1:], ":")
		if authority[end+1:] != "" && !strings.HasPrefix(authority[end+1:], ":") {
			return bad("malformed port")
		}
	} else if h, pt, ok := strings.Cut(authority, ":"); ok {
		host, port = h, pt
		if port == "" {
			return bad("empty port")
		}
	}
	if port != "" && port != "*" && !isPort(port) {
		return bad("the port must be a number or *")
	}
	p.port = port
	switch {
	case host == "[::1]":
		p.host = DomainPattern{exact: "::1"}
	case isIPv4(host):
		p.host = DomainPattern{exact: host}
	default:
		dp, err := ParseDomainPattern(host)
		if err != nil {
			return bad("the host " + strings.TrimPrefix(err.Error(), "domain pattern "))
		}
		p.host = dp
	}
	if p.scheme == "http" && !(p.host.exact != "" && isLoopback(p.host.exact)) {
		return bad("http is allowed only on a loopback host (127.0.0.1, [::1], localhost)")
	}
	if path == "" {
		path = "/"
	}
	p.rest = path
	return p, nil
}

// String returns the pattern as written.
func (p RedirectPattern) String() string { return p.raw }

// Match reports whether the redirect URI uri matches.
func (p RedirectPattern) Match(uri string) bool {
	if strings.Contains(uri, "#") {
		return false
	}
	scheme, after, ok := strings.Cut(uri, ":")
	if !ok || !strings.EqualFold(scheme, p.scheme) {
		return false
	}
	if !p.web {
		return p.matchRest(after)
	}
	u, err := url.Parse(uri)
	if err != nil || u.User != nil || u.Host == "" || u.Opaque != "" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if !p.host.Match(host) {
		return false
	}
	switch {
	case p.port == "*":
	case p.port == "" && isLoopback(host):
	case u.Port() != p.port:
		return false
	}
	rest := u.EscapedPath()
	if rest == "" {
		rest = "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		rest += "?" + u.RawQuery
	}
	return p.matchRest(rest)
}

func (p RedirectPattern) matchRest(rest string) bool {
	if p.prefix {
		return strings.HasPrefix(rest, p.rest)
	}
	return rest == p.rest
}

func validScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isPort(p string) bool {
	if len(p) == 0 || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n > 0 && n < 65536
}

func isIPv4(h string) bool {
	parts := strings.Split(h, ".")
	if len(parts) != 4 {
		return false
	}
	for _, x := range parts {
		if x == "" || len(x) > 3 || strings.Trim(x, "0123456789") != "" {
			return false
		}
	}
	return true
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.") && isIPv4(host)
}

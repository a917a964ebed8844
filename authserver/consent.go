package authserver

import (
	"encoding/base64"
	"encoding/binary"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// consentPage is the data of templates/consent.html.
type consentPage struct {
	ServerName   string
	Title        string
	ClientName   string
	ClientID     string
	Source       string
	RedirectHost string
	UpstreamName string
	Scopes       []string
	Resources    []string
	LoopbackOnly bool
	Action       string
	Hidden       template.HTML // hiddenInputs
	CSRF         string
}

// renderConsent shows the consent page for a validated request. The form re-sends the
// request's parameters with a CSRF token bound to them and to this browser.
func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, v *validatedAuthz) {
	binding := s.flowCookie(w, r)
	name := v.client.Name
	if name == "" {
		name = v.client.ID
	}
	page := consentPage{
		ServerName:   s.opts.DisplayName,
		Title:        "Authorize " + name,
		ClientName:   name,
		ClientID:     v.client.ID,
		Source:       s.describeSource(v.client),
		RedirectHost: redirectHost(v.RedirectURI),
		UpstreamName: s.opts.UpstreamDisplayName,
		Scopes:       v.scopes,
		Resources:    v.resources,
		LoopbackOnly: v.client.Source == sourceMetadata && allLoopback(v.client.RedirectURIs),
		Action:       s.endpoint(pathConsent),
		Hidden:       hiddenInputs(v.values()),
		CSRF:         s.csrfToken(binding, v.authzRequest, s.now().Add(s.opts.PendingTTL)),
	}
	s.renderPage(w, r, http.StatusOK, "consent.html", s.consentCSP(v.RedirectURI), page)
}

// hiddenInputs are the consent form's copies of the request's parameters. They are
// made here rather than by a range in the template because they were most of the
// page's template actions, each a reflective call (docs/performance.md). Values are
// escaped by html/template's own HTMLEscapeString, which is all a double-quoted
// attribute value needs: & < > " ' become references, so a value can neither end
// the attribute nor start markup (TestConsentFormCarriesHostileValuesIntact).
func hiddenInputs(params url.Values) template.HTML {
	var b strings.Builder
	for _, k := range authzParams {
		for _, val := range params[k] {
			b.WriteString(`<input type="hidden" name="`)
			b.WriteString(template.HTMLEscapeString(k))
			b.WriteString(`" value="`)
			b.WriteString(template.HTMLEscapeString(val))
			b.WriteString("\">\n")
		}
	}
	return template.HTML(b.String()) //nolint:gosec // every value escaped above
}

// consentCSP is the page CSP with form-action opened just enough for the form to work.
// Browsers apply form-action to every redirect that follows the form's POST, so besides
// 'self' it must allow the upstream authorization endpoint (Approve) and the client's
// redirect URI (Deny, and the end of the chain when the upstream login is silent).
func (s *Server) consentCSP(redirectURI string) string {
	csp := s.consentCSPBase
	if src, ok := cspSource(redirectURI); ok {
		csp += " " + src
	}
	return csp
}

// consentCSPBaseFor is the consent CSP up to the client's redirect URI: all that does not
// vary, made once in New.
func (s *Server) consentCSPBaseFor() string {
	csp := "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	if src, ok := cspSource(s.upstream.AuthCodeURL("csp", upstream.AuthParams{})); ok {
		csp += " " + src
	}
	return csp
}

// cspSource returns the CSP source expression matching a URL: its origin for http(s),
// its scheme for a private-use scheme. Anything with characters that could break out
// of the header value is refused.
func cspSource(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "", false
	}
	src := u.Scheme + ":"
	if u.Scheme == "http" || u.Scheme == "https" {
		src = u.Scheme + "://" + u.Host
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.:/[]+", c) >= 0) {
			return "", false
		}
	}
	return src, true
}

// handleConsent receives the consent form: it checks the CSRF token against this
// browser's flow cookie, validates the request again (it came back through the
// browser), then continues upstream (Approve) or returns access_denied (Deny).
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	if !s.allowMethods(w, r, http.MethodPost) {
		return
	}
	if err := parseForm(w, r, maxConsentBody); err != nil {
		s.renderError(w, r, asOAuthError(err).Status, "The consent form could not be read.")
		return
	}
	form := r.PostForm
	req := parseAuthzRequest(form)
	binding, ok := s.readFlowCookie(r)
	if !ok || !s.verifyCSRF(form.Get("csrf_token"), binding, req) {
		s.renderError(w, r, http.StatusBadRequest,
			"This consent form has expired or did not come from this browser. Please start again from the application.")
		return
	}
	c, ok := s.checkClientAndRedirect(w, r, form, req)
	if !ok {
		return
	}
	v, oe := s.validateAuthz(form, req, c)
	if oe != nil {
		s.redirectError(w, r, req.RedirectURI, req.State, oe)
		return
	}
	switch form.Get("decision") {
	case "approve":
		if !s.approvalGate(w, r, v) {
			return
		}
		s.rememberConsent(w, r, c.ID, v.scopes)
		s.startUpstream(w, r, v)
	case "deny":
		s.redirectError(w, r, req.RedirectURI, req.State, newError(http.StatusBadRequest, errCodeAccessDenied, "the user denied the request"))
	default:
		s.renderError(w, r, http.StatusBadRequest, "The consent form had no decision.")
	}
}

// csrfToken signs the request's parameters together with the browser's flow cookie and
// an expiry. Binding to the cookie is what stops a login CSRF: an attacker can fetch a
// consent page and its token for their own client, but cannot make it valid in the
// victim's browser, whose flow cookie they do not know.
func (s *Server) csrfToken(binding string, req authzRequest, exp time.Time) string {
	return s.signExpiring("consent-csrf", exp, func(exp int64) string { return csrfPayload(exp, binding, req) })
}

func (s *Server) verifyCSRF(token, binding string, req authzRequest) bool {
	return s.verifyExpiring(token, "consent-csrf", func(exp int64) string { return csrfPayload(exp, binding, req) })
}

// signExpiring makes the CSRF tokens of the consent and device verification forms:
// the expiry (8 bytes, big-endian Unix seconds) in the clear, so that the verifier
// can rebuild the payload without keeping state, then the MAC under label of
// payload(expiry), which binds the expiry as well. The label keeps a token of one
// form from passing for the other's.
func (s *Server) signExpiring(label string, exp time.Time, payload func(exp int64) string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(exp.Unix()))
	mac := s.keys.sign(label, payload(exp.Unix()))
	return base64.RawURLEncoding.EncodeToString(append(b[:], mac...))
}

// verifyExpiring checks a token of signExpiring: unexpired, and its MAC that of
// payload(expiry) under label.
func (s *Server) verifyExpiring(token, label string, payload func(exp int64) string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 8+32 {
		return false
	}
	exp := int64(binary.BigEndian.Uint64(raw[:8]))
	if s.now().Unix() >= exp {
		return false
	}
	want := s.keys.sign(label, payload(exp))
	return equalHash(string(raw[8:]), string(want))
}

// csrfPayload is what the CSRF token signs: the expiry, the browser binding and the
// request's parameters as req.values().Encode() writes them (keys sorted, empty ones
// left out), written here without building the map (TestCSRFPayloadIsValuesEncode).
func csrfPayload(exp int64, binding string, req authzRequest) string {
	var b strings.Builder
	b.Grow(64 + len(binding) + len(req.ClientID) + len(req.RedirectURI) + len(req.State) + len(req.Scope) + len(req.CodeChallenge))
	b.WriteString(strconv.FormatInt(exp, 10))
	b.WriteByte(0)
	b.WriteString(binding)
	b.WriteByte(0)
	first := true
	param := func(k, v string) {
		if !first {
			b.WriteByte('&')
		}
		first = false
		b.WriteString(k) // every key is [a-z_]: QueryEscape would leave it as it is
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	set := func(k, v string) {
		if v != "" {
			param(k, v)
		}
	}
	set("client_id", req.ClientID)
	set("code_challenge", req.CodeChallenge)
	set("code_challenge_method", req.CodeChallengeMethod)
	set("prompt", req.Prompt)
	set("redirect_uri", req.RedirectURI)
	for _, r := range req.Resource {
		param("resource", r)
	}
	set("response_type", req.ResponseType)
	set("scope", req.Scope)
	set("state", req.State)
	return b.String()
}

func (s *Server) describeSource(c *client) string {
	switch c.Source {
	case sourceStatic:
		return "pre-registered by your administrator"
	case sourceMetadata:
		if u, err := url.Parse(c.ID); err == nil {
			return "described by " + u.Host
		}
		return "described by its metadata document"
	}
	return "registered by the application itself"
}

// redirectHost is what the consent page shows of the redirect URI: its host, or the
// app scheme of a private-use URI.
func redirectHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Host != "" {
		return u.Host
	}
	return u.Scheme + ":"
}

func allLoopback(uris []string) bool {
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil || !isLoopbackHost(u.Hostname()) {
			return false
		}
	}
	return len(uris) > 0
}

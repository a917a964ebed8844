package authserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// The device authorization grant (RFC 8628), for command-line clients on machines
// without a browser:
//
//  1. The device POSTs to /oauth/device_authorization and gets a device code (which
//     embeds a fresh grant ID, as our codes do) and a user code to show.
//  2. The user opens /oauth/device on any browser, types the user code and sees who
//     asks for what (always, trusted client or not: RFC 8628 §5.4's remote phishing
//     defence is that the user sees the request and confirms it). Approving spends the
//     user code and runs the normal upstream login; the callback then applies the
//     access rules and stores the approval as an authorization code keyed by the
//     device code's hash, with the user's upstream token (store.SaveLogin).
//  3. Meanwhile the device polls the token endpoint; once the approval is there, the
//     poll redeems it like an authorization code: once, and a second redemption is a
//     replay that revokes the grant.
//
// Everything is in the store, so any replica serves any step. The device code is
// stored only as its keyed hash, the user code too.

// userCodeAlphabet has no vowels (no words) and no look-alike characters (RFC 8628
// §6.1's example: "BCDFGHJKLMNPQRSTVWXZ").
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// userCodeLen gives 20^8 ≈ 2^34.6 codes: RFC 8628 §5.1 leans on rate limiting, not
// entropy, for user codes.
const userCodeLen = 8

// maxDeviceBody bounds a device authorization request and a verification form.
const maxDeviceBody = 16 << 10

// newUserCode returns a random user code without its separator, each character drawn
// uniformly (bytes at or above the largest multiple of 20 are rejected).
func newUserCode() string {
	const limit = 256 - 256%len(userCodeAlphabet)
	out := make([]byte, 0, userCodeLen)
	var buf [16]byte
	for len(out) < userCodeLen {
		_, _ = rand.Read(buf[:])
		for _, b := range buf {
			if int(b) < limit && len(out) < userCodeLen {
				out = append(out, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
			}
		}
	}
	return string(out)
}

// formatUserCode groups a user code as XXXX-XXXX, which is how people read it out.
func formatUserCode(code string) string { return code[:4] + "-" + code[4:] }

// normalizeUserCode reads what a user typed: case, spaces and dashes do not matter
// (RFC 8628 §6.1). It returns false unless 8 characters of the alphabet remain.
func normalizeUserCode(typed string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case r < 0x80 && strings.IndexByte(userCodeAlphabet, byte(r)) >= 0:
			b.WriteRune(r)
		default:
			return "", false
		}
		if b.Len() > userCodeLen {
			return "", false
		}
	}
	return b.String(), b.Len() == userCodeLen
}

// deviceAuthorizationResponse is RFC 8628 §3.2.
type deviceAuthorizationResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// handleDeviceAuthorization is RFC 8628 §3.1: the client authenticates as at the
// token endpoint (public clients with their client_id), asks for a scope and
// resources, and gets its codes.
func (s *Server) handleDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	servePostJSON(s, w, r, s.deviceAuthorization)
}

func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) (*deviceAuthorizationResponse, error) {
	if err := parseForm(w, r, maxDeviceBody); err != nil {
		return nil, err
	}
	form := r.PostForm
	if name, ok := singleValues(form, "resource"); !ok {
		return nil, errInvalidRequest("parameter " + name + " is repeated")
	}
	c, err := s.authenticateClient(r, authExact)
	if err != nil {
		return nil, err
	}
	if !c.allowsGrant(grantDeviceCode) {
		return nil, newError(http.StatusBadRequest, errCodeUnauthorizedClient, "the client may not use the device authorization grant")
	}
	scopes, oe := s.grantableScope(c, form.Get("scope"))
	if oe != nil {
		return nil, oe
	}
	resources, oe := normalizeResources(form["resource"])
	if oe != nil {
		return nil, oe
	}
	opts := s.opts.DeviceAuthorization
	now := s.now()
	d := store.DeviceAuthorization{ClientID: c.ID, Scope: joinScope(scopes), Resource: resources, ExpiresAt: now.Add(opts.CodeTTL)}
	ref := store.DeviceRef{GrantID: newGrantID()}
	deviceCode := mintToken(prefixDevice, ref.GrantID)
	ref.DeviceHash = s.keys.hash(labelToken, deviceCode)
	// A user code already held by a live device (one chance in 2^34 per live code)
	// is drawn again.
	for range 5 {
		userCode := newUserCode()
		err := s.store.SaveDevice(r.Context(), ref, s.keys.hash(labelUserCode, userCode), d, opts.Interval)
		if errors.Is(err, store.ErrAlreadyExists) {
			continue
		}
		if err != nil {
			return nil, err
		}
		verify := s.endpoint(pathDevice)
		s.log.InfoContext(r.Context(), "device authorization started", "client_id", c.ID, "grant", ref.GrantID)
		return &deviceAuthorizationResponse{
			DeviceCode:              deviceCode,
			UserCode:                formatUserCode(userCode),
			VerificationURI:         verify,
			VerificationURIComplete: verify + "?" + url.Values{"user_code": {formatUserCode(userCode)}}.Encode(),
			ExpiresIn:               int64(opts.CodeTTL / time.Second),
			Interval:                int64(opts.Interval / time.Second),
		}, nil
	}
	return nil, errors.New("no free user code after 5 draws")
}

// devicePage is the data of templates/device.html.
type devicePage struct {
	ServerName   string
	Title        string
	UpstreamName string
	// Mode is "enter" (type the code), "confirm" (approve or deny) or "done".
	Mode       string
	Message    string
	UserCode   string
	ClientName string
	ClientID   string
	Source     string
	Scopes     []string
	Resources  []string
	Action     string
	CSRF       string
}

// CSRF steps of the verification page: what a token allows.
const (
	deviceStepEnter   = "enter"
	deviceStepConfirm = "confirm"
)

// handleDevice is the verification page (RFC 8628 §3.3). GET shows the form to type
// the code (filled in from verification_uri_complete); POST without a decision looks
// the code up and shows what the device asks for; POST with a decision approves
// (the upstream login follows) or denies. Every form carries a CSRF token bound to
// this browser's flow cookie, and to the user code once one is shown.
func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	if !s.allowMethods(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	if r.Method == http.MethodGet {
		typed := r.URL.Query().Get("user_code")
		if len(typed) > 32 {
			typed = ""
		}
		s.renderDeviceEntry(w, r, http.StatusOK, typed, "")
		return
	}
	if err := parseForm(w, r, maxDeviceBody); err != nil {
		s.renderError(w, r, asOAuthError(err).Status, "The form could not be read.")
		return
	}
	form := r.PostForm
	binding, hasBinding := s.readFlowCookie(r)
	code, ok := normalizeUserCode(form.Get("user_code"))
	switch form.Get("decision") {
	case "":
		if !hasBinding || !s.verifyDeviceCSRF(form.Get("csrf_token"), binding, deviceStepEnter, "") {
			s.renderDeviceEntry(w, r, http.StatusBadRequest, "", "This form has expired. Please enter the code again.")
			return
		}
		s.deviceLookup(w, r, code, ok, form.Get("user_code"))
	case "approve", "deny":
		if !ok || !hasBinding || !s.verifyDeviceCSRF(form.Get("csrf_token"), binding, deviceStepConfirm, code) {
			s.renderError(w, r, http.StatusBadRequest, "This form has expired or did not come from this browser. Please enter the code again.")
			return
		}
		s.deviceDecide(w, r, code, form.Get("decision") == "approve")
	default:
		s.renderError(w, r, http.StatusBadRequest, "The form had no valid decision.")
	}
}

// deviceLookup finds the device a typed code names and shows its request. Each try
// counts against the address's budget (RFC 8628 §5.1), so codes cannot be guessed.
func (s *Server) deviceLookup(w http.ResponseWriter, r *http.Request, code string, valid bool, typed string) {
	if s.deviceGuesses != nil {
		if ok, wait := s.deviceGuesses.allow(s.clientAddress(r)); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			s.renderDeviceEntry(w, r, http.StatusTooManyRequests, "", "Too many codes were tried from your network. Please wait a minute and try again.")
			return
		}
	}
	if !valid {
		s.renderDeviceEntry(w, r, http.StatusBadRequest, "", "That is not a code of this service: it has 8 letters, such as BCDF-GHJK.")
		return
	}
	_, d, err := s.store.GetUserCode(r.Context(), s.keys.hash(labelUserCode, code))
	if errors.Is(err, store.ErrNotFound) {
		s.renderDeviceEntry(w, r, http.StatusBadRequest, typed, "That code is unknown, expired or already used. Check the code your device shows, or start again on the device.")
		return
	}
	if err != nil {
		s.renderStoreError(w, r, err)
		return
	}
	c, err := s.resolveClient(r.Context(), d.ClientID)
	if err != nil {
		s.renderError(w, r, http.StatusBadRequest, "The application that asked is no longer registered with this server.")
		return
	}
	name := c.Name
	if name == "" {
		name = c.ID
	}
	binding := s.flowCookie(w, r)
	page := devicePage{
		ServerName: s.opts.DisplayName, Title: "Authorize " + name, UpstreamName: s.opts.UpstreamDisplayName,
		Mode: "confirm", UserCode: formatUserCode(code), ClientName: name, ClientID: c.ID,
		Source: s.describeSource(c), Scopes: splitScope(d.Scope), Resources: d.Resource,
		Action: s.endpoint(pathDevice),
		CSRF:   s.deviceCSRF(binding, deviceStepConfirm, code, s.now().Add(s.opts.PendingTTL)),
	}
	s.renderPage(w, r, http.StatusOK, "device.html", s.consentCSP(""), page)
}

// deviceDecide spends the user code (one browser alone goes on) and approves or
// denies. Approval starts the upstream login; the callback finishes it.
func (s *Server) deviceDecide(w http.ResponseWriter, r *http.Request, code string, approve bool) {
	ctx := r.Context()
	ref, d, err := s.store.TakeUserCode(ctx, s.keys.hash(labelUserCode, code))
	if errors.Is(err, store.ErrNotFound) {
		s.renderError(w, r, http.StatusBadRequest, "This code has expired or was already used. Please start again on your device.")
		return
	}
	if err != nil {
		s.renderStoreError(w, r, err)
		return
	}
	if !approve {
		if err := s.store.DenyDevice(ctx, ref); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.renderStoreError(w, r, err)
			return
		}
		s.log.InfoContext(ctx, "device authorization denied by the user", "client_id", d.ClientID, "grant", ref.GrantID)
		s.renderDeviceDone(w, r, http.StatusOK, "Request denied", "The device will not get access. If you did not start this sign-in, someone may have tried to trick you.")
		return
	}
	state := randomString(secretBytes)
	params := upstream.NewAuthParams()
	binding := s.flowCookie(w, r)
	p := store.PendingAuthorization{
		ClientID:         d.ClientID,
		Scope:            d.Scope,
		Resource:         d.Resource,
		Device:           &ref,
		DeviceExpiresAt:  d.ExpiresAt,
		DeviceUserCode:   s.keys.hash(labelUserCode, code),
		UpstreamVerifier: params.Verifier,
		Nonce:            params.Nonce,
		BrowserBinding:   s.keys.hash(labelBrowser, binding),
		ExpiresAt:        minTime(s.now().Add(s.opts.PendingTTL), d.ExpiresAt),
	}
	if err := s.store.SavePending(ctx, s.keys.hash(labelState, state), p); err != nil {
		s.renderStoreError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.upstream.AuthCodeURL(state, params), http.StatusFound)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// deviceCallback finishes a device approval when the user comes back from the
// upstream provider: the upstream login, the access rules, then the approval stored
// for the device to redeem. Every outcome is a page in this browser; a refusal is
// also recorded, so the device hears access_denied at its next poll.
func (s *Server) deviceCallback(w http.ResponseWriter, r *http.Request, p store.PendingAuthorization) {
	ctx := r.Context()
	q := r.URL.Query()
	deny := func() {
		if err := s.store.DenyDevice(ctx, *p.Device); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.ErrorContext(ctx, "record device denial", "grant", p.Device.GrantID, "err", err)
		}
	}
	// again gives the user code back when the login failed without a decision (the
	// upstream or a membership check did not answer): another try may pass, so the
	// device keeps waiting and the user enters the same code again.
	again := func(status int, what string) {
		msg := what + " Start again on your device."
		if p.DeviceUserCode != "" {
			err := s.store.ReturnUserCode(ctx, p.DeviceUserCode, *p.Device, p.DeviceExpiresAt)
			if err == nil || errors.Is(err, store.ErrAlreadyExists) {
				msg = what + " Try again: enter the code your device shows at " + s.endpoint(pathDevice) + " once more."
			} else {
				s.log.ErrorContext(ctx, "give the user code back", "grant", p.Device.GrantID, "err", err)
			}
		}
		s.renderError(w, r, status, msg)
	}
	if upErr := q.Get("error"); upErr != "" {
		if upErr == errCodeAccessDenied {
			deny()
			s.renderError(w, r, http.StatusBadRequest, "The sign-in at "+s.opts.UpstreamDisplayName+" was refused. The device will not get access.")
			return
		}
		again(http.StatusBadRequest, "The sign-in at "+s.opts.UpstreamDisplayName+" did not complete ("+safeDescription(upErr)+").")
		return
	}
	if q.Get("code") == "" {
		s.renderError(w, r, http.StatusBadGateway, "The upstream provider returned no code.")
		return
	}
	uctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	tok, id, err := s.upstream.Exchange(uctx, q.Get("code"), upstream.AuthParams{Verifier: p.UpstreamVerifier, Nonce: p.Nonce})
	if err == nil && (id == nil || id.Subject == "") {
		err = fmt.Errorf("%w: no subject", upstream.ErrIdentity)
	}
	if err != nil {
		s.log.WarnContext(ctx, "upstream code exchange failed", "client_id", p.ClientID, "err", err)
		again(exchangeError(err).Status, "The sign-in could not be completed.")
		return
	}
	scope, ok, refused := s.applyAccessPolicy(w, r, p, tok, id, again)
	if !ok {
		// Only a refusal is final for the device; a membership check that failed has
		// given the user code back (again), so the user can approve once more when
		// the upstream answers.
		if refused {
			deny()
		}
		return
	}
	p.Scope = scope
	if err := s.approveDevice(ctx, p, tok, id); err != nil {
		s.log.ErrorContext(ctx, "store device approval", "client_id", p.ClientID, "err", err)
		s.renderStoreError(w, r, err)
		return
	}
	s.log.InfoContext(ctx, "device authorization approved", "client_id", p.ClientID, "user", id.Subject, "grant", p.Device.GrantID)
	s.renderDeviceDone(w, r, http.StatusOK, "Device connected", "You are signed in on your device. You can return to it now.")
}

// approveDevice stores the user's upstream token and the approval, a code under the
// device code's hash that the device's next poll redeems (one round trip on Redis).
// It lives until the device code expires.
func (s *Server) approveDevice(ctx context.Context, p store.PendingAuthorization, tok *upstream.Token, id *upstream.Identity) error {
	up, err := s.sealUpstreamToken(ctx, id.Subject, tok)
	if err != nil {
		return err
	}
	now := s.now()
	c := store.AuthorizationCode{
		ClientID: p.ClientID, Scope: p.Scope, Resource: p.Resource,
		UserID: id.Subject, AuthTime: now, ExpiresAt: p.DeviceExpiresAt,
	}
	return store.SaveLogin(ctx, s.store, store.Login{UserID: id.Subject, Upstream: up, UpstreamTTL: s.opts.ExternalTokenTTL,
		GrantID: p.Device.GrantID, CodeHash: p.Device.DeviceHash, Code: c})
}

// redeemDeviceCode is the token endpoint's device code grant (RFC 8628 §3.4, §3.5).
// The read made with the client (tokenReads) finds the approval when there is one,
// which is redeemed as a code; otherwise one poll answers authorization_pending,
// slow_down, access_denied or expired_token. Either way two round trips.
func (s *Server) redeemDeviceCode(r *http.Request, c *client, reads *tokenReads) (*tokenResponse, error) {
	ctx, form := r.Context(), r.PostForm
	dc := form.Get("device_code")
	if dc == "" {
		return nil, errInvalidRequest("device_code is required")
	}
	grantID, ok := parseToken(prefixDevice, dc)
	if !ok {
		return nil, errInvalidGrant("the device code is invalid")
	}
	h, ac, err := reads.code(ctx, grantID, dc)
	switch {
	case err == nil:
		return s.redeemDeviceApproval(r, c, grantID, h, ac)
	case errors.Is(err, store.ErrCodeReused):
		// Redeemed before: a second redemption is a replay (RFC 8628 §3.5 leaves it to
		// the authorization code's rule), which revokes what the first one issued.
		return nil, s.codeError(ctx, grantID, err)
	case !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrGrantRevoked):
		return nil, err
	}
	poll, err := s.store.PollDevice(ctx, store.DeviceRef{GrantID: grantID, DeviceHash: h})
	if errors.Is(err, store.ErrNotFound) {
		return nil, newError(http.StatusBadRequest, errCodeExpiredToken, "the device code has expired: start a new device authorization")
	}
	if err != nil {
		return nil, err
	}
	if poll.Device.ClientID != c.ID {
		return nil, errInvalidGrant("the device code was issued to another client")
	}
	switch poll.Status {
	case store.DeviceDenied:
		return nil, newError(http.StatusBadRequest, errCodeAccessDenied, "the user denied the request")
	case store.DeviceSlowDown:
		return nil, newError(http.StatusBadRequest, errCodeSlowDown,
			"polling too fast: wait "+strconv.Itoa(int(poll.Interval/time.Second))+" seconds between requests")
	}
	// Pending, or approved since the read: the next poll redeems.
	return nil, newError(http.StatusBadRequest, errCodeAuthorizationPending, "the user has not yet completed the authorization")
}

// redeemDeviceApproval issues the tokens of an approved device code.
func (s *Server) redeemDeviceApproval(r *http.Request, c *client, grantID, h string, ac store.AuthorizationCode) (*tokenResponse, error) {
	ctx := r.Context()
	if ac.ClientID != c.ID {
		return nil, errInvalidGrant("the device code was issued to another client")
	}
	now := s.now()
	if !now.Before(ac.ExpiresAt) {
		return nil, newError(http.StatusBadRequest, errCodeExpiredToken, "the device code has expired: start a new device authorization")
	}
	resources, err := narrowResources(r.PostForm["resource"], ac.Resource)
	if err != nil {
		return nil, err
	}
	return s.redeemCode(ctx, c, grantID, h, ac, resources, now)
}

// renderDeviceEntry shows the form to type a user code, with message when the last
// try failed.
func (s *Server) renderDeviceEntry(w http.ResponseWriter, r *http.Request, status int, typed, message string) {
	binding := s.flowCookie(w, r)
	page := devicePage{
		ServerName: s.opts.DisplayName, Title: "Connect a device", UpstreamName: s.opts.UpstreamDisplayName,
		Mode: "enter", Message: message, UserCode: typed, Action: s.endpoint(pathDevice),
		CSRF: s.deviceCSRF(binding, deviceStepEnter, "", s.now().Add(s.opts.PendingTTL)),
	}
	s.renderPage(w, r, status, "device.html", deviceFormCSP, page)
}

func (s *Server) renderDeviceDone(w http.ResponseWriter, r *http.Request, status int, title, message string) {
	s.renderPage(w, r, status, "device.html", pageCSP, devicePage{
		ServerName: s.opts.DisplayName, Title: title, Mode: "done", Message: message,
	})
}

// deviceFormCSP is the page CSP with the form posting back to us only.
const deviceFormCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// deviceCSRF signs a verification form's step and user code together with the
// browser's flow cookie and an expiry, as csrfToken does for the consent form.
func (s *Server) deviceCSRF(binding, step, userCode string, exp time.Time) string {
	return s.signExpiring("device-csrf", exp, func(exp int64) string { return deviceCSRFPayload(exp, binding, step, userCode) })
}

func (s *Server) verifyDeviceCSRF(token, binding, step, userCode string) bool {
	return s.verifyExpiring(token, "device-csrf", func(exp int64) string { return deviceCSRFPayload(exp, binding, step, userCode) })
}

func deviceCSRFPayload(exp int64, binding, step, userCode string) string {
	return strconv.FormatInt(exp, 10) + "\x00" + binding + "\x00" + step + "\x00" + userCode
}

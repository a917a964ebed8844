package authserver

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/mcpauth/mcpauth/authserver/clientpolicy"
	"github.com/mcpauth/mcpauth/authserver/store"
)

// registrationRequest is the client metadata we read (RFC 7591 §2). Unknown fields are
// ignored, as §2 requires.
type registrationRequest struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name"`
	ClientURI               string   `json:"client_uri"`
	LogoURI                 string   `json:"logo_uri"`
	Scope                   string   `json:"scope"`
	ApplicationType         string   `json:"application_type"`
}

// registrationResponse is RFC 7591 §3.2.1: the registered metadata plus credentials.
type registrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	ApplicationType         string   `json:"application_type"`
	// RFC 7592 §3: where and with what the client manages its registration.
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
}

const maxClientNameLen = 200

// maxRedirectURIs bounds a registration's redirect_uris. MCP clients register one to
// three; each URI is compared at every authorization request, and a long list would
// only serve to probe the validator or bloat the store.
const maxRedirectURIs = 20

// handleRegister is RFC 7591 dynamic client registration. It is routed only when
// Options.DynamicRegistration is on.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	if preflight(w, r) || !s.allowMethods(w, r, http.MethodPost) || s.rateLimited(w, r, s.registrations) {
		return
	}
	req, err := readRegistration(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if oe := s.validateRegistration(req); oe != nil {
		s.writeError(w, r, oe)
		return
	}
	resp, err := s.register(r, req)
	var limit *sourceLimitError
	if errors.As(err, &limit) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(limit.retryAfter.Seconds())))))
		err = newError(http.StatusTooManyRequests, errCodeTemporarilyUnavailable,
			"this address holds as many live registrations as allowed; reuse one, delete one (RFC 7592), or retry later")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func readRegistration(w http.ResponseWriter, r *http.Request) (*registrationRequest, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, metadataError("content type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errBodyTooLarge
		}
		return nil, errInvalidRequest("cannot read the request body")
	}
	var req registrationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, metadataError("the body is not a JSON object of client metadata")
	}
	return &req, nil
}

func metadataError(desc string) *oauthError {
	return newError(http.StatusBadRequest, errCodeInvalidClientMetadata, desc)
}

// validateRegistration applies defaults (RFC 7591 §2) and checks every field; it
// rewrites req into the metadata that will be registered.
func (s *Server) validateRegistration(req *registrationRequest) *oauthError {
	if len(req.RedirectURIs) == 0 {
		return newError(400, errCodeInvalidRedirectURI, "redirect_uris is required")
	}
	if len(req.RedirectURIs) > maxRedirectURIs {
		return newError(400, errCodeInvalidRedirectURI, "redirect_uris has more than "+strconv.Itoa(maxRedirectURIs)+" entries")
	}
	if req.ApplicationType == "" {
		req.ApplicationType = inferApplicationType(req.RedirectURIs)
	}
	if req.ApplicationType != AppTypeWeb && req.ApplicationType != AppTypeNative {
		return metadataError("application_type must be web or native")
	}
	for _, u := range req.RedirectURIs {
		if err := validateRedirectURI(u, req.ApplicationType); err != nil {
			return newError(400, errCodeInvalidRedirectURI, descriptionOf(err))
		}
	}
	if bad := s.opts.ClientPolicy.DisallowedRedirectURI(req.RedirectURIs); bad != "" {
		s.clientRefused(refusedRedirectURI)
		return newError(400, errCodeInvalidRedirectURI, "redirect URI "+safeDescription(bad)+" is not allowed by this server's client policy")
	}
	if oe := checkGrantAndResponseTypes(req); oe != nil {
		return oe
	}
	// RFC 7591 §2: "If unspecified or omitted, the default is client_secret_basic".
	if req.TokenEndpointAuthMethod == "" {
		req.TokenEndpointAuthMethod = AuthMethodBasic
	}
	if !slices.Contains([]string{AuthMethodNone, AuthMethodBasic, AuthMethodPost}, req.TokenEndpointAuthMethod) {
		return metadataError("token_endpoint_auth_method must be none, client_secret_basic or client_secret_post")
	}
	if len(req.ClientName) > maxClientNameLen || strings.ContainsFunc(req.ClientName, unicode.IsControl) {
		return metadataError("client_name is too long or has control characters")
	}
	for _, u := range []string{req.ClientURI, req.LogoURI} {
		if u != "" && !isWebURL(u) {
			return metadataError("client_uri and logo_uri must be http(s) URLs")
		}
	}
	scopes := splitScope(req.Scope)
	if !subset(scopes, s.opts.ScopesSupported) {
		return metadataError("scope names a scope this server does not support")
	}
	// RFC 7591 §2: the server "MAY reject or replace any of the client's requested
	// metadata values"; the response carries the scope registered. A scope beyond
	// the policy's bound for dynamic clients is narrowed, and refused only when
	// nothing of it is left.
	if bound := s.opts.ClientPolicy.MaxScopes(clientpolicy.Dynamic); bound != nil && len(scopes) > 0 {
		if scopes = intersect(scopes, bound); len(scopes) == 0 {
			return metadataError("none of the requested scopes may be granted to a dynamically registered client")
		}
	}
	req.Scope = joinScope(scopes)
	return nil
}

// inferApplicationType: MCP clients of the 2026-07-28 revision send application_type;
// older ones do not. OpenID Registration's default is web, but a client that registers
// only private-use scheme redirect URIs is a native application whatever it says.
func inferApplicationType(uris []string) string {
	for _, u := range uris {
		if !isPrivateUseScheme(u) {
			return AppTypeWeb
		}
	}
	return AppTypeNative
}

// checkGrantAndResponseTypes applies RFC 7591 §2.1: grant_types and response_types must
// agree (authorization_code goes with code). We support only those two grants.
func checkGrantAndResponseTypes(req *registrationRequest) *oauthError {
	if len(req.GrantTypes) == 0 {
		// RFC 7591 §2: "If omitted, the default behavior is that the client will use
		// only the authorization_code Grant Type." So no refresh tokens by default.
		req.GrantTypes = []string{grantAuthCode}
	}
	if len(req.ResponseTypes) == 0 {
		req.ResponseTypes = []string{responseTypeCode}
	}
	req.GrantTypes = slices.Compact(slices.Sorted(slices.Values(req.GrantTypes)))
	req.ResponseTypes = slices.Compact(slices.Sorted(slices.Values(req.ResponseTypes)))
	for _, g := range req.GrantTypes {
		if g != grantAuthCode && g != grantRefresh {
			return metadataError("grant_types may hold only authorization_code and refresh_token")
		}
	}
	if !slices.Equal(req.ResponseTypes, []string{responseTypeCode}) {
		return metadataError("response_types must be [\"code\"]")
	}
	if !slices.Contains(req.GrantTypes, grantAuthCode) {
		return metadataError("response_types code needs grant_types authorization_code")
	}
	return nil
}

func isWebURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}

// descriptionOf makes an error message safe for error_description (RFC 6749 §5.2: no
// double quote or backslash).
func descriptionOf(err error) string { return safeDescription(err.Error()) }

// register stores the client and returns its credentials: a secret for confidential
// clients, and always a registration access token (RFC 7592), each stored as its HMAC.
// The client counts against its source address's live registrations
// (Options.RegistrationMaxPerSource).
func (s *Server) register(r *http.Request, req *registrationRequest) (*registrationResponse, error) {
	now := s.now()
	c := store.Client{
		Source:                  s.clientAddress(r),
		Name:                    req.ClientName,
		RedirectURIs:            req.RedirectURIs,
		GrantTypes:              req.GrantTypes,
		ResponseTypes:           req.ResponseTypes,
		TokenEndpointAuthMethod: req.TokenEndpointAuthMethod,
		Scope:                   req.Scope,
		ApplicationType:         req.ApplicationType,
		ClientURI:               req.ClientURI,
		LogoURI:                 req.LogoURI,
		CreatedAt:               now,
		ExpiresAt:               s.registrationExpiry(now, now),
	}
	var secret string
	if req.TokenEndpointAuthMethod != AuthMethodNone {
		secret = prefixSecret + randomString(secretBytes)
		c.SecretHash = s.keys.hash(labelClientSecret, secret)
	}
	rat, err := s.createClient(r, &c)
	if err != nil {
		return nil, err
	}
	resp := s.registrationResponse(c, rat)
	resp.ClientSecret = secret
	return resp, nil
}

// registrationResponse is c as RFC 7591 §3.2.1 and RFC 7592 §3 show it, with rat as
// its registration access token. The client secret is only ever shown where it is
// issued.
func (s *Server) registrationResponse(c store.Client, rat string) *registrationResponse {
	resp := &registrationResponse{
		ClientID: c.ID, ClientIDIssuedAt: c.CreatedAt.Unix(),
		RedirectURIs: c.RedirectURIs, TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		GrantTypes: c.GrantTypes, ResponseTypes: c.ResponseTypes, ClientName: c.Name,
		ClientURI: c.ClientURI, LogoURI: c.LogoURI, Scope: c.Scope, ApplicationType: c.ApplicationType,
		RegistrationAccessToken: rat, RegistrationClientURI: s.clientConfigURI(c.ID),
	}
	if c.SecretHash != "" {
		// RFC 7591 §3.2.1: REQUIRED when a secret is issued. The secret lapses with the
		// registration: at the latest a registration TTL after it was made, earlier
		// when the client stays unused for the idle TTL.
		exp := s.registrationLapse(c.CreatedAt).Unix()
		resp.ClientSecretExpiresAt = &exp
	}
	return resp
}

// createClient stores c under a fresh random ID, retrying on the (astronomically
// unlikely) collision, with a new registration access token, which it returns.
// A source over its limit gets 429 with Retry-After: when its earliest registration
// lapses unless used again.
func (s *Server) createClient(r *http.Request, c *store.Client) (string, error) {
	for range 3 {
		c.ID = prefixClientID + randomString(16)
		rat := mintRegistrationToken(c.ID)
		c.RegistrationTokenHash = s.keys.hash(labelRegistrationToken, rat)
		err := s.store.CreateClientLimited(r.Context(), *c, s.maxPerSource())
		var limit *store.SourceLimitError
		switch {
		case errors.As(err, &limit):
			s.metrics.registrationsRefused.Inc()
			s.log.InfoContext(r.Context(), "registration refused: source at its limit", "source", c.Source,
				"limit", s.maxPerSource())
			return "", &sourceLimitError{retryAfter: limit.FreeAt.Sub(s.now())}
		case !errors.Is(err, store.ErrAlreadyExists):
			return rat, err
		}
	}
	return "", errors.New("create client: ID collisions")
}

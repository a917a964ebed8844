package authserver

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// credentials are what a request presented to identify its client (RFC 6749 §2.3).
type credentials struct {
	clientID string
	secret   string
	method   string // AuthMethodBasic, AuthMethodPost or AuthMethodNone
}

// readCredentials reads client credentials from the Authorization header or the form
// body (already parsed). RFC 6749 §2.3: "The client MUST NOT use more than one
// authentication method in each request."
func readCredentials(r *http.Request) (credentials, error) {
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if len(r.PostForm["client_id"]) > 1 || len(r.PostForm["client_secret"]) > 1 {
		return credentials{}, errInvalidRequest("client credentials are repeated")
	}
	auth := r.Header.Get("Authorization")
	if scheme, rest, _ := strings.Cut(auth, " "); strings.EqualFold(scheme, "Basic") {
		id, secret, err := parseBasic(strings.TrimSpace(rest))
		if err != nil {
			return credentials{}, errInvalidClient("malformed Basic credentials")
		}
		if formSecret != "" {
			return credentials{}, errInvalidRequest("use one client authentication method, not two")
		}
		if formID != "" && formID != id {
			return credentials{}, errInvalidClient("client_id does not match the Basic credentials")
		}
		return credentials{clientID: id, secret: secret, method: AuthMethodBasic}, nil
	}
	if formSecret != "" {
		return credentials{clientID: formID, secret: formSecret, method: AuthMethodPost}, nil
	}
	return credentials{clientID: formID, method: AuthMethodNone}, nil
}

// parseBasic decodes RFC 6749 §2.3.1 Basic credentials: the client ID and secret are
// form-urlencoded before they are joined and base64-encoded.
func parseBasic(b64 string) (id, secret string, err error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", "", err
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("no colon")
	}
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", err
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", err
	}
	return id, secret, nil
}

// authMode says how strictly authenticateClient matches the registered method.
type authMode int

const (
	// authExact: the token endpoint; the client uses the method it registered
	// (RFC 7591 §2, token_endpoint_auth_method).
	authExact authMode = iota
	// authAnySecret: introspection and revocation; a confidential client may send its
	// secret either way (these endpoints advertise their own method lists).
	authAnySecret
)

// authenticateClient identifies and authenticates the calling client. Every failure is
// invalid_client (401): RFC 6749 §5.2.
func (s *Server) authenticateClient(r *http.Request, mode authMode) (*client, error) {
	return s.authenticateClientWith(r, mode, s.resolveClient)
}

// authenticateClientWith is authenticateClient finding the client with resolve.
func (s *Server) authenticateClientWith(r *http.Request, mode authMode, resolve func(context.Context, string) (*client, error)) (*client, error) {
	cred, err := readCredentials(r)
	if err != nil {
		return nil, err
	}
	if cred.clientID == "" {
		return nil, errInvalidClient("client authentication is required")
	}
	c, err := resolve(r.Context(), cred.clientID)
	var refused *clientRefusedError
	if errors.As(err, &refused) {
		return nil, errInvalidClient(refused.Description)
	}
	if errors.Is(err, errUnknownClient) {
		return nil, errInvalidClient("unknown client")
	}
	if err != nil {
		return nil, err
	}
	if !c.confidential() {
		if cred.method != AuthMethodNone {
			return nil, errInvalidClient("this client is public and has no secret")
		}
		return c, nil
	}
	if cred.method == AuthMethodNone {
		return nil, errInvalidClient("client authentication is required")
	}
	if mode == authExact && cred.method != c.AuthMethod {
		return nil, errInvalidClient("the client must authenticate with " + c.AuthMethod)
	}
	if !s.verifySecret(c, cred.secret) {
		return nil, errInvalidClient("client authentication failed")
	}
	return c, nil
}

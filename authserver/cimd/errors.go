package cimd

import (
	"errors"
	"strings"
)

// Kinds of failure. Every error Fetch returns is an *Error wrapping exactly one of
// these, so callers can branch with errors.Is. The server answers all of them with
// `invalid_client` (draft §"Metadata Discovery Errors": abort the authorization
// request) and Error.Description as the error_description.
var (
	// ErrInvalidClientID: the client_id is not an acceptable Client Identifier URL.
	// Nothing was fetched.
	ErrInvalidClientID = errors.New("client_id is not a valid client ID metadata document URL")
	// ErrForbiddenAddress: the host resolves to an address the server must not
	// contact (loopback, private, link-local, ...): the SSRF guard refused to connect.
	ErrForbiddenAddress = errors.New("client ID metadata document host resolves to a forbidden address")
	// ErrFetch: the document could not be fetched: network failure, timeout, a status
	// other than 200 (redirects included), or a response that is not JSON.
	ErrFetch = errors.New("client ID metadata document could not be fetched")
	// ErrTooLarge: the response exceeded the size limit.
	ErrTooLarge = errors.New("client ID metadata document is too large")
	// ErrInvalidDocument: the response is not a valid metadata document for this
	// client_id.
	ErrInvalidDocument = errors.New("client ID metadata document is invalid")
)

// Error is a failure to obtain a client's metadata document.
type Error struct {
	// ClientID is the client_id being resolved.
	ClientID string
	// Kind is one of the Err* sentinels.
	Kind error
	// Reason says what was wrong in terms the client's developer can act on ("HTTP
	// status 404", "redirect_uris[1]: must not contain a fragment"). It never holds
	// details of the server's own network.
	Reason string
	// Err is the underlying cause, for logs; may be nil.
	Err error
}

// Error describes the failure, including the underlying cause.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cimd ")
	b.WriteString(e.ClientID)
	b.WriteString(": ")
	b.WriteString(e.Description())
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Description is a message fit for the error_description of an invalid_client
// response: the kind and the reason, without internal causes.
func (e *Error) Description() string {
	if e.Reason == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Reason
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

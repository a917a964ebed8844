package resource

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// RFC 6750 §3.1 error codes.
const (
	errInvalidRequest    = "invalid_request"
	errInvalidToken      = "invalid_token"
	errInsufficientScope = "insufficient_scope"
)

// Middleware lets a request through only with a valid bearer token for this resource
// that has Config.RequiredScopes. It puts the token's Info in the request context
// (FromContext) and in the Go MCP SDK's token information (auth.TokenInfoFromContext,
// and so req.Extra.TokenInfo in tools).
//
// Answers, per RFC 6750 §3 and the MCP specification: no token (or another scheme)
// 401 with WWW-Authenticate: Bearer scope="…", resource_metadata="…"; a bad, inactive,
// expired or foreign token 401 with error="invalid_token"; too little scope 403 with
// error="insufficient_scope" and every scope the route needs; a token in the query
// string 400 invalid_request; the authorization server unreachable 503 with
// Retry-After.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return v.RequireScopes()(next)
}

// RequireScopes returns middleware like Middleware that needs Config.RequiredScopes
// plus scopes. Inside Middleware (or another RequireScopes) it reuses the token
// already validated and checks only scope, so routes can add their own:
//
//	mux.Handle("/admin", v.RequireScopes("admin")(adminHandler))
//
// A 403 names the whole set the route needs, not only what is missing. The MCP
// specification: "servers SHOULD include all scopes required for the current
// operation in a single challenge".
//
// With Config.ToolScopes (or FilterToolsList) set, a POST is also read for its MCP
// method and tool name: a tools/call needs the tool's scopes too, and its 403 names
// them with the route's; headers that disagree with the JSON-RPC body get 400 with a
// JSON-RPC HeaderMismatch error (-32020), a body that is not JSON-RPC 400 with a
// parse error, one over MaxMessageBytes 413. With FilterToolsList, tools/list
// answers list only the tools the token can call.
func (v *Verifier) RequireScopes(scopes ...string) func(http.Handler) http.Handler {
	need := dedupe(append(v.RequiredScopes(), scopes...))
	return func(next http.Handler) http.Handler {
		next = v.sdkBridge(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info, ok := FromContext(r.Context())
			if !ok {
				if info, ok = v.authenticate(w, r, need); !ok {
					return
				}
			}
			r, lists, ok := v.checkCall(w, r, info, need)
			if !ok {
				return
			}
			r = r.WithContext(ContextWithInfo(r.Context(), info))
			if lists == nil {
				next.ServeHTTP(w, r)
				return
			}
			// The answer is rewritten, so it must come uncompressed.
			r.Header.Del("Accept-Encoding")
			f := newToolsFilter(w, lists, func(tool string) bool { return v.CanCallTool(info, tool) })
			next.ServeHTTP(f, r)
			f.finish()
		})
	}
}

// authenticate validates the request's bearer token, or answers the request itself
// and reports false.
func (v *Verifier) authenticate(w http.ResponseWriter, r *http.Request, need []string) (*Info, bool) {
	// MCP specification: "Access tokens MUST NOT be included in the URI query
	// string". RFC 6750 §2.3 allows it only as a last resort; refusing it outright,
	// even alongside a header, keeps tokens out of access logs and Referer headers.
	if r.URL.Query().Has("access_token") {
		v.challenge(w, http.StatusBadRequest, errInvalidRequest, "access tokens must be sent in the Authorization header, not the query string", nil)
		return nil, false
	}
	headers := r.Header.Values("Authorization")
	if len(headers) > 1 {
		v.challenge(w, http.StatusBadRequest, errInvalidRequest, "more than one Authorization header", nil)
		return nil, false
	}
	scheme, token, _ := strings.Cut(strings.Join(headers, ""), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// RFC 6750 §3.1: "If the request lacks any authentication information (e.g.,
		// the client was unaware that authentication is necessary or attempted using
		// an unsupported authentication method), the resource server SHOULD NOT
		// include an error code or other error information."
		v.challenge(w, http.StatusUnauthorized, "", "", need)
		return nil, false
	}
	info, err := v.Verify(r.Context(), strings.TrimSpace(token))
	switch {
	case err == nil:
		return info, true
	case errors.Is(err, ErrInvalidToken):
		v.challenge(w, http.StatusUnauthorized, errInvalidToken, reasonOf(err), need)
	case errors.Is(err, context.Canceled):
		// The client went away while we waited; nobody reads an answer.
	default:
		v.unavailable(w)
	}
	return nil, false
}

// challenge writes an RFC 6750 §3 error with its WWW-Authenticate challenge. Every
// challenge carries resource_metadata (RFC 9728 §5.1; the MCP specification wants it
// in every 401 and in 403s "for consistency"). Values need no escaping: codes and
// descriptions are our constants, and scopes were checked to hold no quote or
// backslash.
func (v *Verifier) challenge(w http.ResponseWriter, status int, code, description string, scopes []string) {
	var params []string
	if code != "" {
		params = append(params, `error="`+code+`"`, `error_description="`+description+`"`)
	}
	// The MCP specification: servers "SHOULD NOT include offline_access in
	// WWW-Authenticate scope"; a route's own scopes were never checked for it.
	scopes = slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return s == offlineAccess })
	if len(scopes) > 0 {
		params = append(params, `scope="`+strings.Join(scopes, " ")+`"`)
	}
	params = append(params, `resource_metadata="`+v.MetadataURL()+`"`)
	w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	body := map[string]string{"error_description": "a bearer token is required"}
	if code != "" {
		body = map[string]string{"error": code, "error_description": description}
	}
	writeJSON(w, status, body)
}

// unavailable answers 503 while the authorization server cannot be asked: the token
// may be fine, so a 401 would push the client into a needless new login.
func (v *Verifier) unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(v.cfg.RetryAfter.Seconds()))))
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{
		"error":             "temporarily_unavailable",
		"error_description": "the authorization server cannot validate the token right now",
	})
}

// sdkBridge hands the validated Info to the Go MCP SDK. The SDK keeps its token
// information under a private context key that only auth.RequireBearerToken sets, so
// the request passes through it with a verifier that returns what Middleware has
// already validated (no second introspection). The SDK needs it: it gives tools
// req.Extra.TokenInfo and binds each session to TokenInfo.UserID.
func (v *Verifier) sdkBridge(next http.Handler) http.Handler {
	validated := func(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		info, ok := FromContext(r.Context())
		if !ok {
			return nil, ErrInvalidToken
		}
		return v.tokenInfo(info), nil
	}
	// Expiry was checked against Config.Now; tokens without exp are allowed there too.
	return auth.RequireBearerToken(validated, &auth.RequireBearerTokenOptions{AllowMissingExpiration: true})(next)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

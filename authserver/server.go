package authserver

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// Body limits. The token family of endpoints takes small forms; 1 MiB is generous and
// still bounds what a client can make us buffer.
const (
	maxFormBody         = 1 << 20
	maxRegistrationBody = 64 << 10
	maxConsentBody      = 64 << 10
)

// Endpoint paths, relative to the issuer's path.
const (
	pathAuthorize  = "/oauth/authorize"
	pathConsent    = "/oauth/consent"
	pathToken      = "/oauth/token"
	pathRegister   = "/oauth/register"
	pathIntrospect = "/oauth/introspect"
	pathRevoke     = "/oauth/revoke"
	// pathDeviceAuthorization and pathDevice (the verification page) are RFC 8628's.
	pathDeviceAuthorization = "/oauth/device_authorization"
	pathDevice              = "/oauth/device"
	pathJWKS                = "/oauth/jwks"
	pathRevocations         = "/oauth/revocations"
	wellKnownAS             = "/.well-known/oauth-authorization-server"
	wellKnownOIDC           = "/.well-known/openid-configuration"
)

// Server is the authorization server. Create it with New; it is safe for concurrent use
// and keeps no flow state of its own, so any number of replicas can share one store.
type Server struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	keys     *keys
	store    store.Store // instrumented: counts backend errors
	upstream upstream.Provider
	metrics  *metrics
	// signing signs JWT access tokens and verifies them; nil when the format is
	// opaque and no keys were given.
	signing  *SigningKeys
	verified verifiedJWTs
	jwt      bool // issue JWT access tokens
	// clientRefusals counts what the client policy stopped (clientpolicy.go).
	clientRefusals *prometheus.CounterVec
	// registrations rate-limits dynamic registration per client address; nil: off.
	registrations *limiter
	// deviceGuesses rate-limits user codes tried on the verification page.
	deviceGuesses *limiter
	// upstreamWait bounds how long a caller waits for another caller's refresh of the
	// same upstream token (upstreamWaitMax; tests shorten it).
	upstreamWait time.Duration

	issuer   string
	prefix   string // the issuer's path, prepended to every endpoint path
	cookies  cookieNames
	metadata []byte // the RFC 8414 document, rendered once
	// routeNames are the route names by ServeMux pattern (routeOf).
	routeNames map[string]string
	// consentCSPBase is the consent page's CSP but for the client's redirect URI.
	consentCSPBase string
	// adminDigest is the SHA-256 of Options.AdminToken (the admin API is routed only
	// when one is set).
	adminDigest [sha256.Size]byte

	handler http.Handler
}

// New validates opts and returns a ready Server.
func New(opts Options) (*Server, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("authserver options: %w", err)
	}
	k, err := deriveKeys(opts.MasterKey)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer, opts.Gatherer)
	if err != nil {
		return nil, fmt.Errorf("authserver metrics: %w", err)
	}
	iu, _ := url.Parse(opts.Issuer) // validated above
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		now:      opts.Now,
		keys:     k,
		store:    instrumentStore(opts.Store, m),
		upstream: opts.Upstream,
		metrics:  m,
		issuer:   opts.Issuer,
		prefix:   iu.Path,
		cookies:  newCookieNames(iu.Scheme == "https"),

		registrations: newLimiter(opts.RegistrationRateLimit, opts.Now),
		deviceGuesses: newLimiter(opts.DeviceAuthorization.VerificationRateLimit, opts.Now),
		upstreamWait:  upstreamWaitMax,

		signing: opts.SigningKeys,
		jwt:     opts.AccessTokenFormat == formatJWT,
	}
	if s.jwt && s.signing == nil {
		if s.signing, err = GenerateSigningKeys(); err != nil {
			return nil, err
		}
	}
	s.adminDigest = sha256.Sum256([]byte(opts.AdminToken))
	if err := opts.Registerer.Register(newClientCounter(s)); err != nil {
		return nil, fmt.Errorf("authserver metrics: %w", err)
	}
	s.clientRefusals = newClientRefusals()
	if err := opts.Registerer.Register(s.clientRefusals); err != nil {
		return nil, fmt.Errorf("authserver metrics: %w", err)
	}
	if s.metadata, err = s.renderMetadata(); err != nil {
		return nil, err
	}
	s.consentCSPBase = s.consentCSPBaseFor()
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler: every endpoint, probe and /metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler serves the Prometheus metrics (what /metrics serves).
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler }

// CallbackURL is the redirect URL the upstream provider must be configured with.
func (s *Server) CallbackURL() string { return s.issuer + s.opts.CallbackPath }

// Issuer returns the issuer identifier exactly as published.
func (s *Server) Issuer() string { return s.issuer }

// endpoint returns the absolute URL of an endpoint path.
func (s *Server) endpoint(path string) string { return s.issuer + path }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.routeNames = map[string]string{}
	route := func(name string, h http.HandlerFunc, paths ...string) {
		wrapped := s.instrument(name, h)
		for _, p := range paths {
			mux.Handle(p, wrapped)
			s.routeNames[p] = name
		}
	}
	route("metadata", s.handleMetadata, s.metadataPaths()...)
	route("authorize", s.handleAuthorize, s.prefix+pathAuthorize)
	route("consent", s.handleConsent, s.prefix+pathConsent)
	route("callback", s.handleCallback, s.prefix+s.opts.CallbackPath)
	route("token", s.handleToken, s.prefix+pathToken)
	if s.opts.DynamicRegistration {
		// Off means absent: the metadata has no registration_endpoint and the path is
		// a plain 404, which is what a client probing an unknown endpoint expects.
		route("register", s.handleRegister, s.prefix+pathRegister)
		route("client_config", s.handleClientConfig, s.prefix+pathRegister+"/")
	}
	route("introspect", s.handleIntrospect, s.prefix+pathIntrospect)
	route("revoke", s.handleRevoke, s.prefix+pathRevoke)
	if s.opts.DeviceAuthorization.Enabled {
		route("device_authorization", s.handleDeviceAuthorization, s.prefix+pathDeviceAuthorization)
		route("device", s.handleDevice, s.prefix+pathDevice)
	}
	if s.opts.AdminToken != "" {
		// Off means absent, as for registration: no token, no admin API.
		route("admin_grants", s.admin(s.handleAdminGrants), s.prefix+adminapi.PathGrants)
		route("admin_revoke", s.admin(s.handleAdminRevoke), s.prefix+adminapi.PathRevoke)
		route("admin_clients", s.admin(s.handleAdminClients), s.prefix+adminapi.PathClients)
		route("admin_client_count", s.admin(s.handleAdminClientCount), s.prefix+adminapi.PathClientCount)
		route("admin_approvals", s.admin(s.handleAdminApprovals), s.prefix+adminapi.PathApprovals)
	}
	route("jwks", s.handleJWKS, s.prefix+pathJWKS)
	route("revocations", s.handleRevocations, s.prefix+pathRevocations)
	route("healthz", s.handleHealthz, "/healthz")
	route("readyz", s.handleReadyz, "/readyz")
	if !s.opts.OmitMetricsEndpoint {
		route("metrics", s.metrics.handler.ServeHTTP, "/metrics")
	}
	return s.recoverPanics(securityHeaders(mux))
}

// securityHeaders sets what every response should carry. no-referrer keeps codes and
// states in our URLs from leaking to other sites through the Referer header.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic into 500 server_error JSON. The stack goes to the log,
// never to the client.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "panic serving request", "route", s.routeOf(r),
				"method", r.Method, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !rec.wroteHeader {
				s.writeError(rec, r, newError(http.StatusInternalServerError, errCodeServerError, "internal error"))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status code for metrics and the panic handler.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// routeOf returns the route name the request was dispatched to (for logs), from the
// pattern the ServeMux matched: no per-request context value (and copy of the
// request) to carry it.
func (s *Server) routeOf(r *http.Request) string {
	if name, ok := s.routeNames[r.Pattern]; ok {
		return name
	}
	return "unknown"
}

// instrument records the request in metrics and the access log. The log line has the
// route name, never the URL: query strings carry codes and states.
func (s *Server) instrument(name string, h http.HandlerFunc) http.Handler {
	obs := s.metrics.route(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Every routed request already has recoverPanics's recorder; one is enough
		// to know the status.
		rec, ok := w.(*statusRecorder)
		if !ok {
			rec = &statusRecorder{ResponseWriter: w}
		}
		defer func() {
			status := rec.status
			if !rec.wroteHeader {
				status = http.StatusOK
			}
			if v := recover(); v != nil {
				status = http.StatusInternalServerError
				defer panic(v) // recoverPanics answers; we only count
			}
			elapsed := time.Since(start)
			obs.observe(status, elapsed)
			if s.log.Enabled(r.Context(), slog.LevelDebug) { // spare the arguments' allocations
				s.log.DebugContext(r.Context(), "request", "route", name, "method", r.Method,
					"status", status, "duration", elapsed)
			}
		}()
		h(rec, r)
	})
}

// metadataPaths are where the RFC 8414 document is served. RFC 8414 §3.1 inserts the
// well-known segment between host and the issuer's path; OpenID Connect Discovery §4
// appends it to the issuer; MCP clients try both (see MCP-AUTH-SPEC.md, discovery
// order), so both forms of both names answer with the same document.
func (s *Server) metadataPaths() []string {
	if s.prefix == "" {
		return []string{wellKnownAS, wellKnownOIDC}
	}
	p := strings.TrimSuffix(s.prefix, "/")
	return []string{wellKnownAS + p, wellKnownOIDC + p, p + wellKnownOIDC, p + wellKnownAS}
}

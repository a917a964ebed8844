package authserver

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// metrics are the server's Prometheus series. Labels are bounded: endpoint is a route
// name, never a raw path.
type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	tokens      *prometheus.CounterVec
	storeErrors *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	exchanges   *prometheus.CounterVec
	adminRevoke *prometheus.CounterVec
	// refreshReuse counts rotated refresh tokens presented again, by outcome: "grace"
	// (the same successor returned inside the window) or "revoked".
	refreshReuse *prometheus.CounterVec
	// upstreamRefreshes counts refreshes of users' upstream tokens this replica ran,
	// by outcome: "ok", "failed" (transient) or "revoked" (refused for good).
	upstreamRefreshes *prometheus.CounterVec
	// reloginRequired counts grants revoked because the user's upstream token was
	// refused for good: their users must log in again.
	reloginRequired prometheus.Counter
	// registrationsRefused counts dynamic registrations refused because their source
	// address held as many live registrations as allowed.
	registrationsRefused prometheus.Counter
	handler              http.Handler // serves the gatherer
}

func newMetrics(reg prometheus.Registerer, gatherer prometheus.Gatherer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauth_http_requests_total",
			Help: "HTTP requests served, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mcpauth_http_request_duration_seconds",
			Help:    "HTTP request latency, by endpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauth_tokens_issued_total",
			Help: "Access tokens issued, by grant type.",
		}, []string{"grant_type"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauth_store_errors_total",
			Help: "Store operations that failed for a reason other than a missing or reused record.",
		}, []string{"operation"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauth_logins_refused_total",
			Help: "Logins refused at the callback by the access rules, by reason: not_allowed, no_granted_scope, or check_failed (memberships could not be read).",
		}, []string{"reason"}),
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauth_token_exchanges_total",
			Help: "RFC 8693 token exchanges, by result: issued, login_required (the user must log in again) or the OAuth error code returned.",
		}, []string{"result"}),
		adminRevoke: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauth_admin_revoked_grants_total",
			Help: "Grants revoked through the admin API, by what selected them: user, client or all.",
		}, []string{"selector"}),
		refreshReuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauth_refresh_token_reuse_total",
			Help: "Rotated refresh tokens presented again, by outcome: grace (same successor returned inside the reuse window) or revoked (the grant was revoked).",
		}, []string{"outcome"}),
		upstreamRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpauth_upstream_refreshes_total",
			Help: "Refreshes of users' upstream tokens run by this replica, by outcome: ok, failed (transient: nothing revoked) or revoked (refused for good by the upstream).",
		}, []string{"outcome"}),
		reloginRequired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpauth_upstream_relogin_required_total",
			Help: "Grants revoked because the upstream refused the user's upstream token for good: the user must log in again.",
		}),
		registrationsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpauth_registrations_refused_total",
			Help: "Dynamic registrations refused (429) because their source address held as many live registrations as allowed.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.tokens, m.storeErrors, m.refusals, m.exchanges, m.adminRevoke, m.refreshReuse, m.upstreamRefreshes, m.reloginRequired, m.registrationsRefused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.handler = metricsHandler(reg, gatherer)
	return m, nil
}

// routeMetrics are one endpoint's series, looked up once rather than by label values
// on every request (a hash of the labels and a map lookup each, and the status code
// formatted). Status codes are few; each one's counter is kept once first seen.
type routeMetrics struct {
	m        *metrics
	endpoint string
	duration prometheus.Observer
	mu       sync.RWMutex
	byStatus map[int]prometheus.Counter
}

func (m *metrics) route(endpoint string) *routeMetrics {
	return &routeMetrics{m: m, endpoint: endpoint, duration: m.duration.WithLabelValues(endpoint), byStatus: map[int]prometheus.Counter{}}
}

func (r *routeMetrics) observe(status int, d time.Duration) {
	r.mu.RLock()
	c, ok := r.byStatus[status]
	r.mu.RUnlock()
	if !ok {
		c = r.m.requests.WithLabelValues(r.endpoint, strconv.Itoa(status))
		r.mu.Lock()
		r.byStatus[status] = c
		r.mu.Unlock()
	}
	c.Inc()
	r.duration.Observe(d.Seconds())
}

// Reasons of mcpauth_logins_refused_total.
const (
	refusedNotAllowed = "not_allowed"
	refusedNoScope    = "no_granted_scope"
	refusedCheck      = "check_failed"
)

func (m *metrics) loginRefused(reason string) {
	m.refusals.WithLabelValues(reason).Inc()
}

func (m *metrics) tokenIssued(grantType string) {
	m.tokens.WithLabelValues(grantType).Inc()
}

// metricsHandler serves gatherer. When it is the server's own registry (the default)
// it also gets the Go runtime and process collectors.
func metricsHandler(reg prometheus.Registerer, gatherer prometheus.Gatherer) http.Handler {
	if r, ok := gatherer.(*prometheus.Registry); ok && prometheus.Registerer(r) == reg {
		// AlreadyRegistered is fine: a caller may have added them to its registry.
		_ = r.Register(collectors.NewGoCollector())
		_ = r.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
}

// domainErrors are answers, not failures: they are not counted as store errors.
var domainErrors = []error{store.ErrNotFound, store.ErrAlreadyExists, store.ErrCodeReused, store.ErrRefreshReused, store.ErrGrantRevoked, store.ErrSourceLimit}

// instrumentedStore counts backend failures per operation.
type instrumentedStore struct {
	store.Store
	m *metrics
}

func instrumentStore(s store.Store, m *metrics) store.Store {
	return &instrumentedStore{Store: s, m: m}
}

func (s *instrumentedStore) count(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, d := range domainErrors {
		if errors.Is(err, d) {
			return err
		}
	}
	s.m.storeErrors.WithLabelValues(op).Inc()
	return err
}

func (s *instrumentedStore) CreateClient(ctx context.Context, c store.Client) error {
	return s.count("create_client", s.Store.CreateClient(ctx, c))
}

func (s *instrumentedStore) CreateClientLimited(ctx context.Context, c store.Client, limit int) error {
	return s.count("create_client", s.Store.CreateClientLimited(ctx, c, limit))
}

func (s *instrumentedStore) GetClient(ctx context.Context, id string) (store.Client, error) {
	c, err := s.Store.GetClient(ctx, id)
	return c, s.count("get_client", err)
}

// ReadTokenRequest keeps the backend's single round trip (store.TokenRequestReader)
// and counts each read's failure as its own call would.
func (s *instrumentedStore) ReadTokenRequest(ctx context.Context, k store.TokenRequestKeys) store.TokenRequestRecords {
	r := store.ReadTokenRequest(ctx, s.Store, k)
	r.ClientErr = s.count("get_client", r.ClientErr)
	if k.CodeHash != "" {
		r.CodeErr = s.count("peek_code", r.CodeErr)
	}
	if k.RefreshHash != "" {
		r.RefreshErr = s.count("get_refresh_token", r.RefreshErr)
	}
	return r
}

// SaveLogin keeps the backend's single round trip (store.LoginWriter).
func (s *instrumentedStore) SaveLogin(ctx context.Context, l store.Login) error {
	return s.count("save_login", store.SaveLogin(ctx, s.Store, l))
}

func (s *instrumentedStore) SavePending(ctx context.Context, h string, p store.PendingAuthorization) error {
	return s.count("save_pending", s.Store.SavePending(ctx, h, p))
}

func (s *instrumentedStore) TakePending(ctx context.Context, h string) (store.PendingAuthorization, error) {
	p, err := s.Store.TakePending(ctx, h)
	return p, s.count("take_pending", err)
}

func (s *instrumentedStore) SaveCode(ctx context.Context, g, h string, c store.AuthorizationCode) error {
	return s.count("save_code", s.Store.SaveCode(ctx, g, h, c))
}

func (s *instrumentedStore) RedeemCode(ctx context.Context, g, h string, gr store.Grant, t store.TokenPair) error {
	return s.count("redeem_code", s.Store.RedeemCode(ctx, g, h, gr, t))
}

func (s *instrumentedStore) PeekCode(ctx context.Context, g, h string) (store.AuthorizationCode, error) {
	c, err := s.Store.PeekCode(ctx, g, h)
	return c, s.count("peek_code", err)
}

func (s *instrumentedStore) GetAccessToken(ctx context.Context, g, h string) (store.Token, error) {
	t, err := s.Store.GetAccessToken(ctx, g, h)
	return t, s.count("get_access_token", err)
}

func (s *instrumentedStore) GetRefreshToken(ctx context.Context, g, h string) (store.Token, error) {
	t, err := s.Store.GetRefreshToken(ctx, g, h)
	return t, s.count("get_refresh_token", err)
}

func (s *instrumentedStore) RotateRefreshToken(ctx context.Context, g, h string, next store.TokenPair, succ store.Successor) ([]byte, error) {
	prior, err := s.Store.RotateRefreshToken(ctx, g, h, next, succ)
	return prior, s.count("rotate_refresh_token", err)
}

func (s *instrumentedStore) GetGrant(ctx context.Context, g string) (store.Grant, error) {
	gr, err := s.Store.GetGrant(ctx, g)
	return gr, s.count("get_grant", err)
}

func (s *instrumentedStore) RevokeGrant(ctx context.Context, g string) error {
	return s.count("revoke_grant", s.Store.RevokeGrant(ctx, g))
}

func (s *instrumentedStore) ListGrants(ctx context.Context, f store.GrantFilter) ([]store.Grant, error) {
	gs, err := s.Store.ListGrants(ctx, f)
	return gs, s.count("list_grants", err)
}

func (s *instrumentedStore) RevokeAccessToken(ctx context.Context, g, h string) error {
	return s.count("revoke_access_token", s.Store.RevokeAccessToken(ctx, g, h))
}

func (s *instrumentedStore) PutUpstreamToken(ctx context.Context, u string, t store.UpstreamToken, ttl time.Duration) error {
	return s.count("put_upstream_token", s.Store.PutUpstreamToken(ctx, u, t, ttl))
}

func (s *instrumentedStore) GetUpstreamToken(ctx context.Context, u string) (store.UpstreamToken, error) {
	t, err := s.Store.GetUpstreamToken(ctx, u)
	return t, s.count("get_upstream_token", err)
}

func (s *instrumentedStore) DeleteUpstreamToken(ctx context.Context, u string) error {
	return s.count("delete_upstream_token", s.Store.DeleteUpstreamToken(ctx, u))
}

func (s *instrumentedStore) AcquireLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ok, err := s.Store.AcquireLease(ctx, name, ttl)
	return ok, s.count("acquire_lease", err)
}

func (s *instrumentedStore) ReleaseLease(ctx context.Context, name string) error {
	return s.count("release_lease", s.Store.ReleaseLease(ctx, name))
}

func (s *instrumentedStore) Revocations(ctx context.Context, since time.Time) ([]store.Revocation, error) {
	r, err := s.Store.Revocations(ctx, since)
	return r, s.count("revocations", err)
}

func (s *instrumentedStore) RevokeTokenID(ctx context.Context, g, jti string, until time.Time) error {
	return s.count("revoke_token_id", s.Store.RevokeTokenID(ctx, g, jti, until))
}

func (s *instrumentedStore) TokenIDRevoked(ctx context.Context, g, jti string) (bool, error) {
	r, err := s.Store.TokenIDRevoked(ctx, g, jti)
	return r, s.count("token_id_revoked", err)
}

func (s *instrumentedStore) Ping(ctx context.Context) error {
	return s.count("ping", s.Store.Ping(ctx))
}

// Package app assembles a running authorization server from its configuration file
// (authserver/config): the store, the upstream provider, key material, pre-registered
// clients (from the file, a clients file and a Kubernetes Secret), the JWT signing
// keys (re-read when their file changes), Client ID Metadata Documents, TLS with
// certificate reloading, a metrics listener and graceful shutdown.
//
// cmd/authserver is a thin main over it, and tests and `make dev` run exactly what the
// binary runs, in process.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"k8s.io/client-go/rest"

	"github.com/mcpauth/mcpauth/authserver"
	"github.com/mcpauth/mcpauth/authserver/access"
	"github.com/mcpauth/mcpauth/authserver/certreload"
	"github.com/mcpauth/mcpauth/authserver/cimd"
	"github.com/mcpauth/mcpauth/authserver/clientpolicy"
	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/kubeclients"
	"github.com/mcpauth/mcpauth/authserver/store"
	"github.com/mcpauth/mcpauth/authserver/store/memory"
	redisstore "github.com/mcpauth/mcpauth/authserver/store/redis"
	"github.com/mcpauth/mcpauth/authserver/upstream"
)

// ShutdownTimeout is how long in-flight requests get after the context ends;
// Kubernetes waits 30 s by default before it kills the pod.
const ShutdownTimeout = 20 * time.Second

// Options are what the process provides beyond the configuration file.
type Options struct {
	// Getenv and ReadFile resolve secrets; default os.Getenv and os.ReadFile.
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
	// Logger receives operational logs. Default: JSON to stderr.
	Logger *slog.Logger
	// Kube is the core/v1 REST client used to watch config.ClientsSecret
	// (kubeclients.NewClient, or a clientset's CoreV1().RESTClient()); nil means the
	// in-cluster client (the server's pod service account).
	Kube rest.Interface
	// ClientsFilePoll is how often the clients file and the signing keys file are
	// re-read. Default 2 s.
	ClientsFilePoll time.Duration
}

// App is a configured authorization server, ready to Run.
type App struct {
	cfg      *config.Config
	opts     Options
	log      *slog.Logger
	server   *authserver.Server
	store    store.Store
	clients  *clientSources
	signing  *signingKeys
	certs    *certreload.Reloader
	watcher  *kubeclients.Watcher
	tlsConf  *tls.Config
	listener net.Listener
}

// New builds the server described by cfg. Nothing listens until Run.
func New(ctx context.Context, cfg *config.Config, o Options) (*App, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if o.ClientsFilePoll <= 0 {
		o.ClientsFilePoll = 2 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secrets, err := cfg.ResolveSecrets(o.Getenv, o.ReadFile)
	if err != nil {
		return nil, err
	}
	if secrets.EncryptionKeyGenerated {
		o.Logger.Warn("no encryption key configured: using a random one; nothing outlives this process (memory store)")
	}
	a := &App{cfg: cfg, opts: o, log: o.Logger}

	prov, err := upstream.New(ctx, upstreamConfig(cfg, secrets))
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	if a.clients, err = newClientSources(cfg, o.ReadFile); err != nil {
		return nil, err
	}
	if a.signing, err = newSigningKeys(cfg, o.ReadFile, o.Logger); err != nil {
		return nil, err
	}
	if a.store, err = newStore(ctx, cfg, secrets, o.ReadFile); err != nil {
		return nil, err
	}
	// One registry for the server's metrics and the store's Redis counters.
	reg := prometheus.NewRegistry()
	if rs, ok := a.store.(*redisstore.Store); ok {
		if err := newRedisCounters(reg, rs.Client()); err != nil {
			_ = a.store.Close()
			return nil, fmt.Errorf("redis metrics: %w", err)
		}
	}
	srvOpts := authserver.Options{
		Registerer:               reg,
		Gatherer:                 reg,
		Issuer:                   cfg.Issuer,
		DisplayName:              cfg.DisplayName,
		ServiceDocumentation:     cfg.ServiceDocumentation,
		ScopesSupported:          cfg.ScopesSupported,
		DefaultScopes:            cfg.DefaultScopes,
		UpstreamScopes:           cfg.UpstreamScopes,
		CallbackPath:             cfg.CallbackPath,
		CodeTTL:                  cfg.Tokens.AuthorizationCodeTTL.Duration(),
		AccessTokenTTL:           cfg.Tokens.AccessTokenTTL.Duration(),
		RefreshTokenTTL:          cfg.Tokens.RefreshTokenTTL.Duration(),
		RegistrationTTL:          cfg.Tokens.ClientRegistrationTTL.Duration(),
		ExternalTokenTTL:         cfg.Tokens.ExternalTokenTTL.Duration(),
		RefreshReuseWindow:       cfg.Tokens.RefreshReuseWindow.Duration(),
		AccessTokenFormat:        cfg.Tokens.AccessTokenFormat,
		SigningKeys:              a.signing.keys,
		AllowPKCEPlain:           cfg.AllowPKCEPlain,
		DynamicRegistration:      cfg.DynamicRegistration.Enabled,
		RegistrationRateLimit:    registrationRateLimit(cfg.DynamicRegistration.RateLimit),
		RegistrationIdleTTL:      offIfZero(cfg.DynamicRegistration.IdleTTL.Duration()),
		RegistrationMaxPerSource: offIfZero(cfg.DynamicRegistration.MaxPerSource),
		DeviceAuthorization: authserver.DeviceAuthorizationOptions{
			Enabled:  cfg.DeviceAuthorization.Enabled,
			CodeTTL:  cfg.DeviceAuthorization.CodeTTL.Duration(),
			Interval: cfg.DeviceAuthorization.Interval.Duration(),
		},
		TrustedProxies:      cfg.TrustedProxyPrefixes(),
		Store:               a.store,
		Upstream:            prov,
		MasterKey:           secrets.EncryptionKey,
		Clients:             a.clients.registry,
		AdminToken:          secrets.AdminToken,
		Logger:              o.Logger,
		OmitMetricsEndpoint: cfg.MetricsAddress != "",
	}
	if !cfg.Access.IsZero() {
		srvOpts.Access = access.New(cfg.Access, upstream.Type(cfg.Upstream.Type))
	}
	if srvOpts.ClientPolicy, err = clientpolicy.New(cfg.ClientPolicy); err != nil {
		_ = a.store.Close()
		return nil, err
	}
	if cfg.ClientIDMetadataDocuments.Enabled {
		srvOpts.CIMD = cimdAdapter{cimd.New(cimd.Options{
			AllowPrivateAddresses: cfg.ClientIDMetadataDocuments.AllowPrivateAddresses,
		})}
	}
	if a.server, err = authserver.New(srvOpts); err != nil {
		_ = a.store.Close()
		return nil, err
	}
	if cfg.TLS.CertFile != "" {
		a.certs, err = certreload.New(cfg.TLS.CertFile, cfg.TLS.KeyFile,
			certreload.OnError(func(err error) {
				o.Logger.Error("tls certificate reload failed; serving the previous one", "error", err)
			}),
			certreload.OnReload(func(*tls.Certificate) { o.Logger.Info("tls certificate reloaded") }))
		if err != nil {
			_ = a.store.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		a.tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: a.certs.GetCertificate}
	}
	if ref := cfg.ClientsSecret; ref != nil {
		kube := o.Kube
		if kube == nil {
			if kube, err = kubeclients.InClusterClient(); err != nil {
				_ = a.store.Close()
				return nil, fmt.Errorf("clientsSecret: %w", err)
			}
		}
		if a.watcher, err = kubeclients.New(kube, *ref, a.clients.secretSink(), o.Logger); err != nil {
			_ = a.store.Close()
			return nil, fmt.Errorf("clientsSecret: %w", err)
		}
	}
	return a, nil
}

// Handler is the server's HTTP handler, for tests that serve it themselves.
func (a *App) Handler() http.Handler { return a.server.Handler() }

// Server is the authorization server.
func (a *App) Server() *authserver.Server { return a.server }

// Listen binds the configured address (or addr, when not empty, such as
// "127.0.0.1:0" in tests) and returns the address bound. Run serves on it.
func (a *App) Listen(addr string) (string, error) {
	if addr == "" {
		addr = a.cfg.ListenAddress
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("listen %s: %w", addr, err)
	}
	a.listener = l
	return l.Addr().String(), nil
}

// Run serves until ctx ends, then drains in-flight requests for up to ShutdownTimeout.
// The clients file, the clients Secret and the TLS certificate are watched meanwhile.
func (a *App) Run(ctx context.Context) error {
	defer a.store.Close()
	if a.listener == nil {
		if _, err := a.Listen(""); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	go a.clients.watchFile(ctx, a.opts.ClientsFilePoll, a.log)
	go a.signing.watch(ctx, a.opts.ClientsFilePoll, a.log)
	if a.watcher != nil {
		go func() {
			if err := a.watcher.Run(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("clients secret watch: %w", err)
			}
		}()
	}
	if a.certs != nil {
		go func() { _ = a.certs.Run(ctx) }()
	}

	servers := []*http.Server{a.httpServer(a.server.Handler())}
	go a.serve(servers[0], a.listener, a.tlsConf, errc)
	if a.cfg.MetricsAddress != "" {
		ml, err := net.Listen("tcp", a.cfg.MetricsAddress)
		if err != nil {
			return fmt.Errorf("listen %s (metricsAddress): %w", a.cfg.MetricsAddress, err)
		}
		ms := a.httpServer(a.server.MetricsHandler())
		servers = append(servers, ms)
		go a.serve(ms, ml, nil, errc)
	}
	a.log.Info("authorization server listening", "address", a.listener.Addr().String(), "issuer", a.cfg.Issuer, "tls", a.tlsConf != nil, "store", a.cfg.Store.Type)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer done()
	for _, s := range servers {
		if err := s.Shutdown(shutdownCtx); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("shutdown: %w", err))
		}
	}
	a.log.Info("authorization server stopped")
	return runErr
}

func (a *App) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
}

func (a *App) serve(s *http.Server, l net.Listener, tlsConf *tls.Config, errc chan<- error) {
	var err error
	if tlsConf != nil {
		s.TLSConfig = tlsConf
		err = s.ServeTLS(l, "", "")
	} else {
		err = s.Serve(l)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		errc <- err
	}
}

// upstreamConfig maps the file's upstream section to the provider's config.
func upstreamConfig(cfg *config.Config, s *config.Secrets) upstream.Config {
	u := cfg.Upstream
	uc := upstream.Config{
		Type:              upstream.Type(u.Type),
		ClientID:          u.ClientID,
		ClientSecret:      s.UpstreamClientSecret,
		IssuerURL:         u.IssuerURL,
		AuthorizationURL:  u.AuthorizationURL,
		TokenURL:          u.TokenURL,
		UserInfoURL:       u.UserInfoURL,
		APIURL:            u.APIURL,
		Scopes:            u.Scopes,
		GroupsField:       cfg.Access.GroupsClaim,
		UserIDField:       u.UserIDField,
		RedirectURL:       cfg.CallbackURL(),
		InsecureAllowHTTP: u.InsecureAllowHTTP,
	}
	// The file documents "sub" as oauth2's default user field; the provider wants it
	// said.
	if uc.Type == upstream.TypeOAuth2 && uc.UserIDField == "" {
		uc.UserIDField = "sub"
	}
	// GitHub shows private organization and team memberships only to a token with
	// read:org; config validation makes an explicit scope list name it.
	if cfg.Access.UsesGitHubMemberships() && len(uc.Scopes) == 0 {
		uc.Scopes = append(upstream.DefaultScopes(uc.Type), config.GitHubMembershipScope)
	}
	return uc
}

// newStore opens the configured backend. A Redis that is down does not fail here: the
// server starts and /readyz reports why it is not ready.
func newStore(ctx context.Context, cfg *config.Config, s *config.Secrets, readFile func(string) ([]byte, error)) (store.Store, error) {
	// The feed keeps a revocation until every token it concerns has expired.
	retention := authserver.FeedRetention(cfg.Tokens.AccessTokenTTL.Duration())
	if cfg.Store.Type != config.StoreRedis {
		return memory.New(memory.Options{Prefix: config.DefaultKeyPrefix, RevocationRetention: retention}), nil
	}
	r := cfg.Store.Redis
	o := redisstore.Options{
		RevocationRetention: retention,
		Addrs:               r.Addresses,
		MasterName:          r.MasterName,
		Username:            r.Username,
		Password:            s.RedisPassword,
		DB:                  r.DB,
		Prefix:              r.KeyPrefix,
	}
	if r.URL != "" {
		u, err := goredis.ParseURL(r.URL)
		if err != nil {
			return nil, fmt.Errorf("store.redis.url: %w", err)
		}
		o.Addrs, o.DB, o.TLS = []string{u.Addr}, u.DB, u.TLSConfig
		if u.Username != "" {
			o.Username = u.Username
		}
		if u.Password != "" && o.Password == "" {
			o.Password = u.Password
		}
	}
	if r.TLS.Enabled || r.TLS.CAFile != "" || r.TLS.InsecureSkipVerify {
		if o.TLS == nil {
			o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.TLS.InsecureSkipVerify = r.TLS.InsecureSkipVerify
		if r.TLS.CAFile != "" {
			pem, err := readFile(r.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("store.redis.tls.caFile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("store.redis.tls.caFile: %s holds no PEM certificate", r.TLS.CAFile)
			}
			o.TLS.RootCAs = pool
		}
	}
	st, err := redisstore.New(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("store.redis: %w", err)
	}
	return st, nil
}

// cimdAdapter lets the server use the cimd package's fetcher.
type cimdAdapter struct{ f *cimd.Fetcher }

func (c cimdAdapter) Fetch(ctx context.Context, clientID string) (*authserver.ClientMetadataDocument, error) {
	d, err := c.f.Fetch(ctx, clientID)
	if err != nil {
		return nil, err
	}
	return &authserver.ClientMetadataDocument{
		ClientID:                d.ClientID,
		ClientName:              d.ClientName,
		RedirectURIs:            d.RedirectURIs,
		ClientURI:               d.ClientURI,
		LogoURI:                 d.LogoURI,
		TokenEndpointAuthMethod: d.TokenEndpointAuthMethod,
		GrantTypes:              d.GrantTypes,
		Scope:                   d.Scope,
	}, nil
}

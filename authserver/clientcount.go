package authserver

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clientCountEvery is how old the store's count of registrations may be when a
// scrape reads it: one ZCOUNT per replica per 30 s on Redis, however often Prometheus
// scrapes, and none between scrapes.
const clientCountEvery = 30 * time.Second

// clientCountTimeout bounds the store read a scrape makes.
const clientCountTimeout = 2 * time.Second

// Kinds of mcpauth_registered_clients.
const (
	clientKindDynamic = "dynamic" // RFC 7591 registrations in the store
	clientKindStatic  = "static"  // configuration, the clients file, MCPClient resources
)

// clientCounter is the mcpauth_registered_clients gauge. Dynamic registrations are
// counted in the store (shared by every replica, so every replica reports the same
// number) and the count is kept for clientCountEvery; static clients are counted in
// the registry, when it can say (Len). A store that cannot be read leaves out the
// dynamic series until it answers again, rather than report a number it does not
// know.
type clientCounter struct {
	s    *Server
	desc *prometheus.Desc

	mu      sync.Mutex
	at      time.Time // of the last successful read
	dynamic int
}

func newClientCounter(s *Server) *clientCounter {
	return &clientCounter{s: s, desc: prometheus.NewDesc("mcpauth_registered_clients",
		"Live registered clients, by kind: dynamic (RFC 7591, in the store; read at most every 30s) or static (configuration and MCPClient resources).",
		[]string{"kind"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *clientCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *clientCounter) Collect(ch chan<- prometheus.Metric) {
	if n, ok := c.dynamicCount(); ok {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), clientKindDynamic)
	}
	if l, ok := c.s.opts.Clients.(interface{ Len() int }); ok {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(l.Len()), clientKindStatic)
	}
}

// dynamicCount returns the store's count, read again when the kept one is
// clientCountEvery old.
func (c *clientCounter) dynamicCount() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.s.now()
	if !c.at.IsZero() && now.Sub(c.at) < clientCountEvery {
		return c.dynamic, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientCountTimeout)
	defer cancel()
	n, err := c.s.store.CountClients(ctx)
	if err != nil {
		c.s.log.Warn("count registered clients for metrics", "err", err)
		return 0, false
	}
	c.at, c.dynamic = now, n
	return n, true
}

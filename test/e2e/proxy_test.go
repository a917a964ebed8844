package e2e

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
)

// roundRobin is the load balancer in front of the authorization server replicas: it
// sends each request to the next backend in turn, so consecutive steps of one login
// (authorize, consent, callback, token) land on different processes, as they may
// behind any Kubernetes Service. Its URL is the public issuer.
type roundRobin struct {
	proxies []*httputil.ReverseProxy
	next    atomic.Uint64
	served  []atomic.Int64
}

func newRoundRobin(backends []string) *roundRobin {
	rr := &roundRobin{served: make([]atomic.Int64, len(backends))}
	for _, b := range backends {
		target := &url.URL{Scheme: "http", Host: b}
		rr.proxies = append(rr.proxies, &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host // the public host, as an ingress passes it
				pr.SetXForwarded()
			},
		})
	}
	return rr
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := (rr.next.Add(1) - 1) % uint64(len(rr.proxies))
	rr.served[i].Add(1)
	rr.proxies[i].ServeHTTP(w, r)
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The baselines run in a process of their own, like the server, so that all three
// pay the same for being a separate process. Two listeners:
//
//	(a) reads the request, does one Redis GET of a record the size of a token record,
//	    and writes it back: the ceiling for introspection on this machine;
//	(b) reads the request and writes the same bytes without Redis: the HTTP ceiling.
//
// Both get exactly the requests introspection gets (same path, headers and body), from
// the same generator at the same concurrency, with go-redis at its defaults (what the
// server uses) and the server's http.Server timeouts.

// baselineKey holds the record baseline (a) reads.
const baselineKey = "bench:baseline"

func runBaseline(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	redisAddr := fs.String("redis", "", "Redis address for baseline (a)")
	addrA := fs.String("listen-a", "", "address of baseline (a), one Redis GET per request")
	addrB := fs.String("listen-b", "", "address of baseline (b), no Redis")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
	body, err := rdb.Get(context.Background(), baselineKey).Bytes()
	if err != nil {
		return fmt.Errorf("read %s: %w", baselineKey, err)
	}
	a := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		v, err := rdb.Get(r.Context(), baselineKey).Bytes()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(v)
	})
	b := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	errc := make(chan error, 2)
	for _, s := range []struct {
		addr string
		h    http.Handler
	}{{*addrA, a}, {*addrB, b}} {
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
		go func() { errc <- srv.Serve(l) }()
	}
	return <-errc
}

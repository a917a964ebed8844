package main

import (
	"io"
	"net"
	"net/http"
	"strings"
)

// The fast upstream: a plain OAuth 2.0 provider (the server's "oauth2" type) with a
// token endpoint and a user-info endpoint, served from the generator's process over
// loopback. It keeps no state: the upstream code the generator makes up for a login is
// the user's ID, the access token carries it, and user info reads it back. No
// signatures, no lookups, so it costs the machine as little as an upstream can.
//
// The user's visit to the upstream's authorization page is not an HTTP request: the
// generator reads the state from the redirect our server sends and calls our callback
// itself, as the upstream would after a login.

const (
	upstreamCodePrefix   = "upc-"
	upstreamAccessPrefix = "upat-"
)

func upstreamHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		user, ok := strings.CutPrefix(r.PostForm.Get("code"), upstreamCodePrefix)
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"`+upstreamAccessPrefix+user+`","token_type":"Bearer","expires_in":3600,"refresh_token":"uprt-`+user+`"}`)
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		user, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "+upstreamAccessPrefix)
		if !ok {
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"sub":"`+user+`","email":"`+user+`@bench.example","name":"Bench User"}`)
	})
	return mux
}

// serveUpstream starts the fast upstream and returns its base URL.
func serveUpstream() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go func() { _ = (&http.Server{Handler: upstreamHandler()}).Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

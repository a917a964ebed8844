package authserver

import (
	"context"
	"net/http"
	"time"
)

// readyTimeout bounds the store ping behind /readyz, so a hung backend gives a clear 503
// before the kubelet's probe timeout gives up on us.
const readyTimeout = 2 * time.Second

// handleHealthz answers while the process serves HTTP (the liveness probe): it touches
// nothing external, so a store outage never gets the pod restarted.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	if !s.allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	writePlain(w, http.StatusOK, "ok\n")
}

// handleReadyz answers 200 when the store is reachable and safe to use (on Redis: the
// eviction policy is noeviction) and, with JWT access tokens, a signing key is active;
// else 503 with the reason, so a replica that cannot
// serve logins is taken out of the Service.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if !s.allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		writePlain(w, http.StatusServiceUnavailable, "not ready: store: "+err.Error()+"\n")
		return
	}
	if s.jwt {
		if _, _, ok := s.signing.Active(s.now()); !ok {
			writePlain(w, http.StatusServiceUnavailable, "not ready: signing keys: "+errNoActiveKey.Error()+
				" (every key in the signing keys file has a later activateAt), so no access token can be signed\n")
			return
		}
	}
	writePlain(w, http.StatusOK, "ok\n")
}

func writePlain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

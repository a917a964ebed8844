package authserver

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"sync"

	"github.com/mcpauth/mcpauth/authserver/store"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages are the server-rendered HTML pages: no JavaScript, inline styles only.
var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// pageCSP allows nothing but inline styles and forbids framing (clickjacking) and form
// posts; the consent page widens form-action for its own form.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// errorPage is the data of templates/error.html.
type errorPage struct {
	ServerName string
	Title      string
	Message    string
}

// renderError shows an error page. It is used wherever redirecting would be unsafe: an
// invalid client or redirect URI, a missing or replayed upstream state.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, message string) {
	title := "Sign-in cannot continue"
	if status >= 500 {
		title = "Sign-in is temporarily unavailable"
	}
	s.renderPage(w, r, status, "error.html", pageCSP, errorPage{ServerName: s.opts.DisplayName, Title: title, Message: message})
}

// renderStoreError shows the page for an internal failure: 503 for a store outage, 500
// otherwise; the cause goes to the log.
func (s *Server) renderStoreError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "request failed", "route", s.routeOf(r), "err", err)
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		s.renderError(w, r, http.StatusServiceUnavailable, "The service is temporarily unavailable. Please try again in a moment.")
		return
	}
	s.renderError(w, r, http.StatusInternalServerError, "Something went wrong on our side.")
}

// pageBufferSize holds a whole consent page (about 4 KiB), so rendering one does not
// grow the buffer again and again.
const pageBufferSize = 8 << 10

// pageBuffers are reused: a consent page is in every login, and a fresh 8 KiB buffer
// each time was a tenth of what a login allocated. A buffer that grew past 64 KiB
// (a page with very long parameters) is left to the collector.
var pageBuffers = sync.Pool{New: func() any { b := new(bytes.Buffer); b.Grow(pageBufferSize); return b }}

// renderPage executes a template into a buffer first, so a template error becomes a
// clean 500 rather than half a page.
func (s *Server) renderPage(w http.ResponseWriter, r *http.Request, status int, name, csp string, data any) {
	buf := pageBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			pageBuffers.Put(buf)
		}
	}()
	if err := pages.ExecuteTemplate(buf, name, data); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

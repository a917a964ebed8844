// Package certreload serves a TLS certificate that follows its files on disk.
//
// cert-manager and the kubelet rotate a mounted Secret by writing a new directory and
// swapping a symlink (..data) to it; the certificate file itself is never modified in
// place, so watching it with inotify misses the change (the watched inode is simply
// abandoned). A Reloader instead re-reads both files every interval and compares a
// hash of their content: a few kilobytes read every few seconds, robust to symlink
// swaps, copies that keep the mtime, and clock skew.
//
// A new pair that does not load (half-written, key and certificate from different
// rotations, garbage) is reported and ignored: the last good certificate keeps being
// served, and the pair is tried again as soon as either file changes.
package certreload

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often the files are checked. The kubelet itself only
// refreshes mounted Secrets every minute or so, so checking more often buys little.
const DefaultInterval = 10 * time.Second

// Reloader holds the current certificate and reloads it from its files. Its methods
// are safe for concurrent use.
type Reloader struct {
	certFile, keyFile string
	interval          time.Duration
	onError           func(error)
	onReload          func(*tls.Certificate)

	cert atomic.Pointer[tls.Certificate]

	mu sync.Mutex // serializes Reload; guards the fields below
	// seen is the hash of the content last tried, good or bad, so a broken pair is
	// reported once rather than on every tick.
	seen [sha256.Size]byte
}

// Option configures a Reloader.
type Option func(*Reloader)

// WithInterval sets how often Run checks the files. Non-positive values are ignored.
func WithInterval(d time.Duration) Option {
	return func(r *Reloader) {
		if d > 0 {
			r.interval = d
		}
	}
}

// OnError sets a function called when a changed pair cannot be loaded; the previous
// certificate stays in use. It runs on Run's goroutine (or Reload's caller).
func OnError(f func(error)) Option {
	return func(r *Reloader) { r.onError = f }
}

// OnReload sets a function called after a new certificate has replaced the old one.
func OnReload(f func(*tls.Certificate)) Option {
	return func(r *Reloader) { r.onReload = f }
}

// New loads the certificate and key from their PEM files. It fails if the first load
// fails, since there is no earlier certificate to fall back on. Call Run to follow
// later changes.
func New(certFile, keyFile string, opts ...Option) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, interval: DefaultInterval}
	for _, o := range opts {
		o(r)
	}
	if _, err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate returns the current certificate; use it as tls.Config.GetCertificate.
// Leave tls.Config.Certificates empty: Go consults GetCertificate only when the client
// sends SNI or Certificates is empty.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Certificate returns the certificate currently served; its Leaf is parsed.
func (r *Reloader) Certificate() *tls.Certificate {
	return r.cert.Load()
}

// Run checks the files every interval until ctx is done, and returns nil then.
func (r *Reloader) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := r.reload(); err != nil && r.onError != nil {
				r.onError(err)
			}
		}
	}
}

// Reload checks the files now. It reports whether a new certificate was installed; an
// error means the files changed but did not load, and the old certificate stays.
// Errors are returned, not passed to OnError.
func (r *Reloader) Reload() (bool, error) {
	return r.reload()
}

func (r *Reloader) reload() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, keyPEM, changed, err := r.read()
	if err != nil || !changed {
		return false, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("load TLS key pair %s, %s: %w", r.certFile, r.keyFile, err)
	}
	// Go 1.23+ fills Leaf in X509KeyPair; the check keeps callers safe from the
	// GODEBUG setting that turns that off.
	if cert.Leaf == nil {
		return false, fmt.Errorf("load TLS key pair %s: no parsed leaf certificate", r.certFile)
	}
	r.cert.Store(&cert)
	if r.onReload != nil {
		r.onReload(&cert)
	}
	return true, nil
}

// read returns both files and whether their content differs from what was tried
// last. A read error is returned every time: a missing file is worth repeating until
// someone fixes it, while a pair that does not parse is reported once per content.
func (r *Reloader) read() (certPEM, keyPEM []byte, changed bool, err error) {
	certPEM, err = os.ReadFile(r.certFile)
	if err != nil {
		return nil, nil, false, fmt.Errorf("read TLS certificate: %w", err)
	}
	keyPEM, err = os.ReadFile(r.keyFile)
	if err != nil {
		return nil, nil, false, fmt.Errorf("read TLS key: %w", err)
	}
	h := sha256.New()
	// Length-prefix the certificate so moving bytes between the files changes the sum.
	fmt.Fprintf(h, "%d\n", len(certPEM))
	h.Write(certPEM)
	h.Write(keyPEM)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if sum == r.seen {
		return nil, nil, false, nil
	}
	r.seen = sum
	return certPEM, keyPEM, true, nil
}

package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mcpauth/mcpauth/authserver"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// signingKeys keeps the server's JWT signing keys in step with the signing keys file,
// which the operator rewrites to rotate them: no restart, so a rotation never logs
// anyone out.
type signingKeys struct {
	keys     *authserver.SigningKeys // nil: opaque tokens and no file
	readFile func(string) ([]byte, error)
	path     string // empty: generated at start, or none

	mu   sync.Mutex
	data []byte
}

// newSigningKeys loads the signing keys file, or, with JWT access tokens and no file
// (the memory store: config.Validate requires the file with Redis), generates a key.
func newSigningKeys(cfg *config.Config, readFile func(string) ([]byte, error), log *slog.Logger) (*signingKeys, error) {
	s := &signingKeys{readFile: readFile, path: cfg.Secrets.SigningKeysFile}
	if s.path != "" {
		// Wrong at start stops the server, like any bad configuration; a later bad
		// rewrite keeps the last good keys (see watch).
		if _, err := s.reload(); err != nil {
			return nil, err
		}
		return s, nil
	}
	switch cfg.Tokens.AccessTokenFormat {
	case config.AccessTokenJWT:
		k, err := authserver.GenerateSigningKeys()
		if err != nil {
			return nil, err
		}
		s.keys = k
		log.Warn("no signing keys file configured: signing JWT access tokens with a key generated for this process; " +
			"they stop verifying when it ends (set secrets.signingKeysFile to keep them)")
	}
	return s, nil
}

// reload re-reads the file; it reports whether the keys changed.
func (s *signingKeys) reload() (bool, error) {
	data, err := s.readFile(s.path)
	if err != nil {
		return false, fmt.Errorf("secrets.signingKeysFile: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data != nil && bytes.Equal(data, s.data) {
		return false, nil
	}
	parsed, err := config.ParseSigningKeys(data)
	if err != nil {
		return false, fmt.Errorf("secrets.signingKeysFile %s: %w", s.path, err)
	}
	if s.keys == nil {
		if s.keys, err = authserver.NewSigningKeys(parsed); err != nil {
			return false, fmt.Errorf("secrets.signingKeysFile %s: %w", s.path, err)
		}
	} else if err := s.keys.Replace(parsed); err != nil {
		return false, fmt.Errorf("secrets.signingKeysFile %s: %w", s.path, err)
	}
	s.data = data
	return true, nil
}

// watch polls the file, as clientSources.watchFile does the clients file: kubelet
// swaps a mounted Secret's files through symlinks, which inotify on the file misses.
func (s *signingKeys) watch(ctx context.Context, every time.Duration, log *slog.Logger) {
	if s.path == "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err := s.reload()
			switch {
			case err != nil && !os.IsNotExist(err):
				log.Error("signing keys file rejected; keeping the previous keys", "error", err)
			case changed:
				kid, _, active := s.keys.Active(time.Now())
				log.Info("signing keys reloaded", "path", s.path, "activeKeyID", kid, "active", active)
			}
		}
	}
}

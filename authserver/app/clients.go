package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mcpauth/mcpauth/authserver"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// clientSources merges the three places pre-registered clients come from (the config
// file, the clients file, the Kubernetes Secret the operator writes) into the one
// registry the server reads. Each source replaces only its own part.
type clientSources struct {
	registry *authserver.StaticClients
	readFile func(string) ([]byte, error)
	path     string // the clients file, or empty

	mu       sync.Mutex
	fixed    []authserver.StaticClient
	file     []authserver.StaticClient
	secret   []authserver.StaticClient
	fileData []byte
	// fileApprovals and secretApprovals are the client IDs each source approves for
	// approval mode (config.ClientsFile.Approvals).
	fileApprovals   []string
	secretApprovals []string
}

func newClientSources(cfg *config.Config, readFile func(string) ([]byte, error)) (*clientSources, error) {
	fixed, err := staticClients(cfg.Clients, readFile)
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	reg, err := authserver.NewStaticClients(fixed...)
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	s := &clientSources{registry: reg, readFile: readFile, path: cfg.ClientsFile, fixed: fixed}
	if s.path != "" {
		// A clients file that is wrong at start stops the server, like any other bad
		// configuration; later mistakes keep the last good list (see watchFile).
		if _, err := s.reloadFile(cfg); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// staticClients converts the file format into the server's.
func staticClients(in []config.Client, readFile func(string) ([]byte, error)) ([]authserver.StaticClient, error) {
	out := make([]authserver.StaticClient, 0, len(in))
	for _, c := range in {
		digest, err := c.SecretDigest(readFile)
		if err != nil {
			return nil, err
		}
		out = append(out, authserver.StaticClient{
			ID:                      c.ClientID,
			SecretSHA256:            digest,
			Name:                    c.ClientName,
			RedirectURIs:            c.RedirectURIs,
			GrantTypes:              c.GrantTypes,
			TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
			Scopes:                  c.Scopes,
			Trusted:                 c.Trusted,
			IntrospectUpstream:      c.IntrospectUpstream,
			Resources:               c.Resources,
		})
	}
	return out, nil
}

// publish hands the merged list to the registry; callers hold mu.
func (s *clientSources) publish() error {
	all := slices.Concat(s.fixed, s.file, s.secret)
	return s.registry.Replace(all)
}

// reloadFile re-reads the clients file; it reports whether the contents changed.
func (s *clientSources) reloadFile(cfg *config.Config) (bool, error) {
	data, err := s.readFile(s.path)
	if err != nil {
		return false, fmt.Errorf("clientsFile: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fileData != nil && bytes.Equal(data, s.fileData) {
		return false, nil
	}
	parsedFile, err := config.ParseClientsFile(data)
	parsed := parsedFile.Clients
	if err == nil && cfg != nil {
		err = cfg.ValidateClients(parsed)
	}
	if err != nil {
		return false, fmt.Errorf("clientsFile %s: %w", s.path, err)
	}
	converted, err := staticClients(parsed, s.readFile)
	if err != nil {
		return false, fmt.Errorf("clientsFile %s: %w", s.path, err)
	}
	prev := s.file
	s.file = converted
	if err := s.publish(); err != nil {
		s.file = prev
		return false, fmt.Errorf("clientsFile %s: %w", s.path, err)
	}
	s.fileData = data
	s.fileApprovals = approvedIDs(parsedFile.Approvals)
	s.publishApprovals()
	return true, nil
}

// watchFile polls the clients file: kubelet swaps mounted files through symlinks,
// which inotify on the file itself would miss.
func (s *clientSources) watchFile(ctx context.Context, every time.Duration, log *slog.Logger) {
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
			changed, err := s.reloadFile(nil)
			switch {
			case err != nil && !os.IsNotExist(err):
				log.Error("clients file rejected; keeping the previous clients", "error", err)
			case changed:
				log.Info("clients file reloaded", "path", s.path)
			}
		}
	}
}

// secretSink receives the clients and approvals of the operator's registry Secret.
func (s *clientSources) secretSink() secretSink { return secretSink{s} }

// secretSink is a kubeclients.ApprovalSink for the registry Secret's part.
type secretSink struct{ s *clientSources }

// ReplaceClients implements kubeclients.Sink.
func (k secretSink) ReplaceClients(clients []config.Client) error {
	s := k.s
	converted, err := staticClients(clients, s.readFile)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.secret
	s.secret = converted
	if err := s.publish(); err != nil {
		s.secret = prev
		return err
	}
	return nil
}

// ReplaceApprovals implements kubeclients.ApprovalSink.
func (k secretSink) ReplaceApprovals(approvals []config.Approval) error {
	s := k.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secretApprovals = approvedIDs(approvals)
	s.publishApprovals()
	return nil
}

// publishApprovals hands the merged approvals to the registry; callers hold mu.
func (s *clientSources) publishApprovals() {
	s.registry.ReplaceApprovals(slices.Concat(s.fileApprovals, s.secretApprovals))
}

func approvedIDs(as []config.Approval) []string {
	ids := make([]string, 0, len(as))
	for _, a := range as {
		ids = append(ids, a.ClientID)
	}
	return ids
}

package controllers

import (
	"fmt"
	"net/url"
	"strings"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// An MCPClient with spec.approveClientID registers nothing: it approves a client that
// registered itself (a dynamic registration or a Client ID Metadata Document) for the
// provider's approval mode. The operator never touches the server's store, so the
// approval travels the way registrations do: the provider lists it in the registry
// Secret the server watches (config.ClientsFile.Approvals), and the server counts it
// as an administrator's approval.

// approving reports whether c approves an existing client rather than registering one.
func approving(c *oauthv1alpha1.MCPClient) bool { return c.Spec.ApproveClientID != "" }

// approvalEntry is c's approval in its provider's registry, checked as the server
// will check it, and against the provider's client policy: approving a metadata
// document on a host the policy refuses would do nothing, so it is reported instead.
func approvalEntry(cfg *config.Config, c *oauthv1alpha1.MCPClient) (config.Approval, error) {
	id := c.Spec.ApproveClientID
	entry := config.Approval{ClientID: id, ApprovedBy: "MCPClient " + c.Namespace + "/" + c.Name}
	data, err := config.MarshalClientsFile(config.ClientsFile{Approvals: []config.Approval{entry}})
	if err != nil {
		return entry, err
	}
	if _, err := config.ParseClientsFile(data); err != nil {
		return entry, fieldErrors(err, func(string) string { return "spec.approveClientID" })
	}
	lower := strings.ToLower(id)
	switch {
	case strings.HasPrefix(lower, "http://"):
		return entry, fmt.Errorf("spec.approveClientID: %q: a metadata document client ID is an https URL", id)
	case strings.HasPrefix(lower, "https://"):
		u, err := url.Parse(id)
		if err != nil || u.Host == "" || u.Path == "" || u.Path == "/" {
			return entry, fmt.Errorf("spec.approveClientID: %q is not a metadata document URL (https with a path)", id)
		}
		if !domainAllowed(cfg.ClientPolicy.MetadataDocumentDomains, strings.ToLower(u.Hostname())) {
			return entry, fmt.Errorf("spec.approveClientID: the host %s is not in the provider's spec.clientPolicy.metadataDocumentDomains, so the server refuses this client whatever the approval", u.Hostname())
		}
	}
	return entry, nil
}

// domainAllowed applies the policy's metadata-document domains as the server does.
func domainAllowed(patterns []string, host string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if dp, err := config.ParseDomainPattern(p); err == nil && dp.Match(host) {
			return true
		}
	}
	return false
}

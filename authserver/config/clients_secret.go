package config

import "regexp"

// ClientsSecret names a Kubernetes Secret whose one key holds a clients file (the
// format ParseClients reads). The server watches that Secret through the Kubernetes
// API and replaces its pre-registered clients on every change, within about a second:
// the kubelet's own sync of a mounted Secret can take a minute or more, too slow for
// an MCPClient that should work seconds after `kubectl apply`. The operator renders
// this section and grants the server's ServiceAccount get, list and watch on exactly
// this Secret (resourceNames), so the server reads no other Secret.
type ClientsSecret struct {
	// Namespace of the Secret. Empty means the server's own namespace, from the
	// POD_NAMESPACE environment variable.
	Namespace string `json:"namespace,omitempty"`
	// Name of the Secret. Required.
	Name string `json:"name"`
	// Key of the Secret's data that holds the clients file. Required.
	Key string `json:"key"`
}

// dnsSubdomain is a Kubernetes object name (RFC 1123 subdomain); secretKey is a
// Secret data key. Both checked here so a typo fails at start, not as a watch that
// never finds its object.
var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	secretKey    = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
)

// validateClientsSecret checks the clientsSecret section when it is set.
func (c *Config) validateClientsSecret(v *validator) {
	s := c.ClientsSecret
	if s == nil {
		return
	}
	if s.Namespace != "" && (len(s.Namespace) > 63 || !dnsSubdomain.MatchString(s.Namespace)) {
		v.addf("clientsSecret.namespace", "%q is not a namespace name", s.Namespace)
	}
	switch {
	case s.Name == "":
		v.addf("clientsSecret.name", "required")
	case len(s.Name) > 253 || !dnsSubdomain.MatchString(s.Name):
		v.addf("clientsSecret.name", "%q is not a Secret name (lowercase letters, digits, '-' and '.')", s.Name)
	}
	switch {
	case s.Key == "":
		v.addf("clientsSecret.key", "required")
	case len(s.Key) > 253 || !secretKey.MatchString(s.Key):
		v.addf("clientsSecret.key", "%q is not a Secret key (letters, digits, '-', '_' and '.')", s.Key)
	}
}

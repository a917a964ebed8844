// Package config is the authorization server's configuration file: the contract
// between the operator, which renders it, and the server, which runs from it.
//
// The file is YAML with camelCase keys. It is decoded strictly: an unknown or
// mis-cased key is an error naming its path, so a typo never silently falls back to a
// default. After the file, a few environment variables override it, with the names and
// units (seconds) of the Python framework this project grew from: OAUTH_*_TTL,
// SESSION_PROVIDER and SESSION_REDIS_URL. Validate reports every problem at once, each
// prefixed with the path of the field at fault.
//
// The file never holds a secret value. The upstream client secret, the Redis password
// and the encryption key come from files (mounted Kubernetes Secrets) or from the
// environment, and are read only by ResolveSecrets, so a rendered config can live in a
// ConfigMap and be logged safely.
//
// The package imports only the standard library and sigs.k8s.io/yaml, so the operator
// can build a Config in Go and Marshal it without pulling in the server, its HTTP
// handlers or its store. docs/configuration.md describes every field for users.
package config

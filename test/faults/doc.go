// Package faults holds tests that break what the authorization server stands on while
// clients use it, and check what the clients see: Redis killed and restarted, a Redis
// Sentinel failover, the server's own process sent SIGTERM. Every process runs on
// loopback, every load loop is bounded and stops by itself, and each test takes a few
// seconds. docs/security.md lists them with the attacks.
//
// The operator's faults (a Secret deleted and re-created, a provider deleted under its
// clients, rendered objects edited by hand) are envtest specs in controllers/.
package faults

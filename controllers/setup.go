package controllers

import (
	"context"
	"fmt"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

// Field indexes on the manager's cache, so the watches can map an object to the
// resources that refer to it without listing everything.
const (
	// indexClientProvider indexes MCPClients by spec.providerRef.name.
	indexClientProvider = "spec.providerRef.name"
	// indexProviderSecrets indexes OAuthProviders by the name of every Secret they
	// reference (upstream client secret, Redis password and CA, TLS).
	indexProviderSecrets = "spec.secretRefs"
)

// Options configure the reconcilers.
type Options struct {
	// AuthServerImage is the authorization server image for OAuthProviders whose spec
	// names none.
	AuthServerImage string
	// Clock tells the time of signing key rotations; nil means the real clock. Tests
	// move it forward to see a month's rotation in a second.
	Clock clock.PassiveClock
	// ClientCounter reads each running server's count of dynamic registrations for
	// status.dynamicClients; nil leaves it unknown. cmd/manager passes an
	// AdminAPICounter.
	ClientCounter ClientCounter
}

// SetupWithManager registers the field indexes and both reconcilers with mgr. It is the
// one entry point cmd/manager (and the tests) call.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := setupIndexes(ctx, mgr); err != nil {
		return err
	}
	recorder := mgr.GetEventRecorder(managerName)
	providers := &OAuthProviderReconciler{
		Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: recorder,
		AuthServerImage: opts.AuthServerImage, Clock: opts.Clock, ClientCounter: opts.ClientCounter,
	}
	if err := providers.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the OAuthProvider reconciler: %w", err)
	}
	clients := &MCPClientReconciler{Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: recorder}
	if err := clients.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the MCPClient reconciler: %w", err)
	}
	return nil
}

func setupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &oauthv1alpha1.MCPClient{}, indexClientProvider, func(obj client.Object) []string {
		return []string{obj.(*oauthv1alpha1.MCPClient).Spec.ProviderRef.Name}
	}); err != nil {
		return fmt.Errorf("index MCPClients by provider: %w", err)
	}
	if err := idx.IndexField(ctx, &oauthv1alpha1.OAuthProvider{}, indexProviderSecrets, func(obj client.Object) []string {
		return referencedSecretNames(obj.(*oauthv1alpha1.OAuthProvider))
	}); err != nil {
		return fmt.Errorf("index OAuthProviders by Secret: %w", err)
	}
	return nil
}

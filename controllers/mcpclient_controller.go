package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// MCPClientReconciler gives an MCPClient a stable client ID (and a secret, for a
// confidential client) in a credentials Secret it owns, and reports whether its
// provider's registry lists it. It never writes the registry: the OAuthProvider
// reconciler does, from the credentials Secrets, so there is one writer.
type MCPClientReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
}

// clientScope is what the phases of one MCPClient reconcile share.
type clientScope struct {
	client   *oauthv1alpha1.MCPClient
	original *oauthv1alpha1.MCPClient

	// provider is nil when it does not exist; config is its rendered configuration.
	provider *oauthv1alpha1.OAuthProvider
	config   *config.Config
	creds    *corev1.Secret
	// problem is something only the user can fix (a Secret name taken, an entry the
	// server would refuse).
	problem    *blocker
	registered bool
}

type clientPhase func(context.Context, *clientScope) error

// Reconcile resolves the provider, writes the credentials and checks the registration,
// then patches the status.
func (r *MCPClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	mc := &oauthv1alpha1.MCPClient{}
	if err := r.Get(ctx, req.NamespacedName, mc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !mc.DeletionTimestamp.IsZero() {
		// The credentials Secret goes with its owner; the provider drops the entry.
		return ctrl.Result{}, nil
	}
	s := &clientScope{client: mc, original: mc.DeepCopy()}
	defer func() {
		if err := r.patchStatus(ctx, s, reterr); err != nil {
			reterr = kerrors.NewAggregate([]error{reterr, err})
		}
	}()
	for _, phase := range []clientPhase{r.resolveProvider, r.reconcileCredentials, r.checkRegistration} {
		if err := phase(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler.
func (r *MCPClientReconciler) SetupWithManager(mgr ctrl.Manager) error {
	specChanged := predicate.Or(predicate.GenerationChangedPredicate{},
		predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{})
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.MCPClient{}, builder.WithPredicates(specChanged)).
		Owns(&corev1.Secret{}).
		// A provider appearing, disappearing or changing (its URL, its readiness).
		Watches(&oauthv1alpha1.OAuthProvider{}, handler.EnqueueRequestsFromMapFunc(r.clientsOfProvider)).
		// The registry Secret, which says whether each client is registered.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.clientsOfRegistry)).
		Named("mcpclient").
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrentReconciles}).
		Complete(r)
}

func (r *MCPClientReconciler) clientsOfProvider(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.clientsOf(ctx, obj.GetNamespace(), obj.GetName())
}

func (r *MCPClientReconciler) clientsOfRegistry(ctx context.Context, obj client.Object) []reconcile.Request {
	owner := metav1.GetControllerOf(obj)
	if owner == nil || !isOurGroup(owner) || owner.Kind != "OAuthProvider" || obj.GetName() != registrySecretName(owner.Name) {
		return nil
	}
	return r.clientsOf(ctx, obj.GetNamespace(), owner.Name)
}

func (r *MCPClientReconciler) clientsOf(ctx context.Context, namespace, provider string) []reconcile.Request {
	var list oauthv1alpha1.MCPClientList
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{indexClientProvider: provider}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list MCPClients of provider", "provider", provider)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, mc := range list.Items {
		reqs = append(reqs, request(namespace, mc.Name))
	}
	return reqs
}

// resolveProvider finds the provider. Its absence is not an error: the provider watch
// brings the client back here when it is created.
func (r *MCPClientReconciler) resolveProvider(ctx context.Context, s *clientScope) error {
	key := client.ObjectKey{Namespace: s.client.Namespace, Name: s.client.Spec.ProviderRef.Name}
	p, err := getOptional(ctx, r.Client, key, &oauthv1alpha1.OAuthProvider{})
	if err != nil || p == nil {
		return err
	}
	s.provider = p
	// Invalid or not, the config says what the issuer and the scopes are; the
	// provider reports its own invalidity.
	s.config, _ = renderConfig(p)
	return nil
}

// reconcileCredentials writes the credentials Secret. The client ID comes from the
// status, else from an existing credentials Secret, else it is generated: once made,
// it never changes. So does a confidential client's secret.
func (r *MCPClientReconciler) reconcileCredentials(ctx context.Context, s *clientScope) error {
	if s.provider == nil {
		return nil
	}
	if approving(s.client) {
		// Nothing to log in with: the client has its own credentials.
		s.client.Status.ClientID, s.client.Status.SecretName = s.client.Spec.ApproveClientID, ""
		return nil
	}
	mc := s.client
	name := credentialsSecretName(mc)
	existing, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: mc.Namespace, Name: name}, &corev1.Secret{})
	if err != nil {
		return err
	}
	if existing != nil && !ownedBy(existing, mc) {
		s.problem = &blocker{reason: oauthv1alpha1.ReasonSecretConflict, message: fmt.Sprintf(
			"Secret %s exists and is not managed by this MCPClient; delete it or choose another spec.secretName", name)}
		return nil
	}
	previous, err := r.previousCredentials(ctx, mc, name)
	if err != nil {
		return err
	}
	id, secret, err := credentials(mc, existing, previous)
	if err != nil {
		return err
	}
	obj, res, err := apply(ctx, r.Client, r.Scheme, mc, buildCredentialsSecret(mc, s.config.Issuer, id, secret))
	if err != nil {
		return err
	}
	s.creds = obj.(*corev1.Secret)
	mc.Status.ClientID, mc.Status.SecretName = id, name
	if res == controllerutil.OperationResultCreated {
		r.Recorder.Eventf(mc, s.creds, corev1.EventTypeNormal, "CredentialsCreated", "CreateSecret",
			"Wrote client ID %s to Secret %s", id, name)
	}
	if previous != nil {
		if err := r.Delete(ctx, previous); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete previous credentials Secret %s: %w", previous.Name, err)
		}
	}
	return nil
}

// previousCredentials is the credentials Secret of an earlier spec.secretName, if this
// client owns one: its credentials carry over, and it is deleted once they have.
func (r *MCPClientReconciler) previousCredentials(ctx context.Context, mc *oauthv1alpha1.MCPClient, name string) (*corev1.Secret, error) {
	old := mc.Status.SecretName
	if old == "" || old == name {
		return nil, nil
	}
	prev, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: mc.Namespace, Name: old}, &corev1.Secret{})
	if err != nil || prev == nil || !ownedBy(prev, mc) {
		return nil, err
	}
	return prev, nil
}

// credentials picks the client ID and secret to write, reusing what exists.
func credentials(mc *oauthv1alpha1.MCPClient, existing, previous *corev1.Secret) (id, secret string, err error) {
	id = firstNonEmpty(mc.Status.ClientID, secretValue(existing, credClientID), secretValue(previous, credClientID))
	if id == "" {
		if id, err = newClientID(); err != nil {
			return "", "", err
		}
	}
	if !confidential(mc) {
		return id, "", nil
	}
	secret = firstNonEmpty(secretValue(existing, credClientSecret), secretValue(previous, credClientSecret))
	if secret == "" {
		if secret, err = newClientSecret(); err != nil {
			return "", "", err
		}
	}
	return id, secret, nil
}

func secretValue(s *corev1.Secret, key string) string {
	if s == nil {
		return ""
	}
	return string(s.Data[key])
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// checkRegistration compares the provider's registry with the entry this client
// should have there. A registry that does not list it yet is not an error: its watch
// brings the client back when the provider has written it.
func (r *MCPClientReconciler) checkRegistration(ctx context.Context, s *clientScope) error {
	if approving(s.client) {
		return r.checkApproval(ctx, s)
	}
	if s.provider == nil || s.problem != nil || s.creds == nil {
		return nil
	}
	want, err := registryEntry(s.config, s.client, s.creds)
	if err != nil {
		s.problem = &blocker{reason: oauthv1alpha1.ReasonInvalidSpec, message: err.Error()}
		return nil
	}
	f, err := r.readRegistry(ctx, s)
	if err != nil || f == nil {
		return err
	}
	for _, e := range f.Clients {
		if e.ClientID == want.ClientID {
			s.registered = equality.Semantic.DeepEqual(e, want)
		}
	}
	return nil
}

// readRegistry returns the provider's registry as the provider last wrote it, or
// nil when there is none to compare with yet: the Secret is missing, is not the
// provider's, or does not parse. The provider is its only writer and validates
// what it writes, so a registry that does not parse is logged, not an error to
// requeue on.
func (r *MCPClientReconciler) readRegistry(ctx context.Context, s *clientScope) (*config.ClientsFile, error) {
	key := client.ObjectKey{Namespace: s.provider.Namespace, Name: registrySecretName(s.provider.Name)}
	registry, err := getOptional(ctx, r.Client, key, &corev1.Secret{})
	if err != nil || registry == nil || !ownedBy(registry, s.provider) {
		return nil, err
	}
	f, err := config.ParseClientsFile(registry.Data[registryKey])
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "registry Secret does not parse", "secret", registry.Name)
		return nil, nil
	}
	return &f, nil
}

// checkApproval is checkRegistration for an MCPClient with approveClientID: the
// registry must list its approval.
func (r *MCPClientReconciler) checkApproval(ctx context.Context, s *clientScope) error {
	if s.provider == nil || s.problem != nil {
		return nil
	}
	want, err := approvalEntry(s.config, s.client)
	if err != nil {
		s.problem = &blocker{reason: oauthv1alpha1.ReasonInvalidSpec, message: err.Error()}
		return nil
	}
	f, err := r.readRegistry(ctx, s)
	if err != nil || f == nil {
		return err
	}
	for _, c := range f.Clients {
		if c.ClientID == want.ClientID {
			s.problem = &blocker{reason: oauthv1alpha1.ReasonInvalidSpec, message: fmt.Sprintf(
				"spec.approveClientID: %s is a client the operator registers from an MCPClient; it needs no approval", want.ClientID)}
			return nil
		}
	}
	for _, a := range f.Approvals {
		if a.ClientID == want.ClientID {
			s.registered = equality.Semantic.DeepEqual(a, want)
		}
	}
	return nil
}

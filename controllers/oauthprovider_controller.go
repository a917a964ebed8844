package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// OAuthProviderReconciler renders an OAuthProvider into the objects that run its
// authorization server, and reports how that server is doing.
type OAuthProviderReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// AuthServerImage is the server image for providers whose spec names none.
	AuthServerImage string
	// Clock tells the time of signing key rotations; nil means the real clock.
	Clock clock.PassiveClock
	// ClientCounter reads the running server's count of dynamic registrations for
	// status.dynamicClients; nil leaves it unknown.
	ClientCounter ClientCounter
}

// providerScope is what the phases of one reconcile share.
type providerScope struct {
	provider *oauthv1alpha1.OAuthProvider
	// original is the provider as read, for the status patch.
	original *oauthv1alpha1.OAuthProvider

	config     *config.Config
	configYAML []byte
	// blocked, when set, says why the server cannot be (re)deployed: an invalid spec
	// or a missing Secret. The Deployment is then left as it is.
	blocked *blocker
	// keys is the stored keys Secret, admin the admin token's; inputs the data of
	// every hashed Secret by name.
	keys   *corev1.Secret
	admin  *corev1.Secret
	inputs map[string]map[string][]byte
	hash   string
	// deployment is the stored Deployment, nil when there is none.
	deployment *appsv1.Deployment
	// registered counts the registry's entries; nil until the registry phase ran.
	registered *int32
	// signingKeys is the status of the signing keys, nil until their phase ran.
	signingKeys *oauthv1alpha1.SigningKeysStatus
	// dynamicClients is the server's count of dynamic registrations; nil: unknown.
	dynamicClients *int32
	// requeueAfter is when a phase needs another pass though nothing it watches
	// changes (a signing key activates or retires); 0 for never.
	requeueAfter time.Duration
}

// blocker is a reason the server cannot be deployed, for the conditions.
type blocker struct {
	reason, message string
}

type providerPhase func(context.Context, *providerScope) error

// Reconcile renders the provider's objects phase by phase, and patches its status on
// the way out, whatever happened.
func (r *OAuthProviderReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, reterr error) {
	p := &oauthv1alpha1.OAuthProvider{}
	if err := r.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !p.DeletionTimestamp.IsZero() {
		// Owner references delete everything rendered; there is nothing else to undo.
		return ctrl.Result{}, nil
	}
	s := &providerScope{provider: p, original: p.DeepCopy()}
	defer func() {
		if err := r.patchStatus(ctx, s, reterr); err != nil {
			reterr = kerrors.NewAggregate([]error{reterr, err})
		}
	}()
	phases := []providerPhase{
		r.reconcileConfig,
		r.reconcileIdentity,
		r.reconcileKeys,
		r.reconcileSigningKeys,
		r.reconcileAdminToken,
		r.reconcileRegistry,
		r.reconcileInputs,
		r.reconcileConfigMap,
		r.reconcileDeployment,
		r.reconcileService,
		r.reconcilePodDisruptionBudget,
		r.countDynamicClients,
	}
	for _, phase := range phases {
		if err := phase(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}
	// Every object whose change matters is watched; only time itself (the signing key
	// schedule) needs a timer.
	return ctrl.Result{RequeueAfter: s.requeueAfter}, nil
}

// maxConcurrentReconciles lets each controller work on several objects at once (never
// on one object twice at once): a reconcile mostly waits for the API server, and 50
// providers with 1,000 clients created together were Ready in 24 s one at a time
// (docs/performance.md).
const maxConcurrentReconciles = 4

// SetupWithManager registers the reconciler. The field indexes it uses are registered
// by the package's SetupWithManager.
func (r *OAuthProviderReconciler) SetupWithManager(mgr ctrl.Manager) error {
	// Status writes of our own bump neither generation, labels nor annotations, so they
	// do not trigger another pass; a touched annotation forces one.
	specChanged := predicate.Or(predicate.GenerationChangedPredicate{},
		predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{})
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.OAuthProvider{}, builder.WithPredicates(specChanged)).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		// Secrets: the provider's own (keys, registry), the user's it references, and
		// MCPClient credentials, whose arrival adds an entry to the registry.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.providersForSecret)).
		Watches(&oauthv1alpha1.MCPClient{}, handler.EnqueueRequestsFromMapFunc(providerOfClient)).
		Named("oauthprovider").
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrentReconciles}).
		Complete(r)
}

// providersForSecret maps a Secret to the providers that care about it.
func (r *OAuthProviderReconciler) providersForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	var reqs []reconcile.Request
	ns := obj.GetNamespace()
	if owner := metav1.GetControllerOf(obj); owner != nil && isOurGroup(owner) {
		switch owner.Kind {
		case "OAuthProvider":
			reqs = append(reqs, request(ns, owner.Name))
		case "MCPClient":
			mc := &oauthv1alpha1.MCPClient{}
			if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: owner.Name}, mc); err == nil {
				reqs = append(reqs, request(ns, mc.Spec.ProviderRef.Name))
			}
		}
	}
	var providers oauthv1alpha1.OAuthProviderList
	if err := r.List(ctx, &providers, client.InNamespace(ns), client.MatchingFields{indexProviderSecrets: obj.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list OAuthProviders referencing Secret", "secret", obj.GetName())
		return reqs
	}
	for _, p := range providers.Items {
		reqs = append(reqs, request(ns, p.Name))
	}
	return reqs
}

// providerOfClient maps an MCPClient to its provider, whose registry lists it.
func providerOfClient(_ context.Context, obj client.Object) []reconcile.Request {
	mc, ok := obj.(*oauthv1alpha1.MCPClient)
	if !ok {
		return nil
	}
	return []reconcile.Request{request(mc.Namespace, mc.Spec.ProviderRef.Name)}
}

func request(namespace, name string) reconcile.Request {
	return reconcile.Request{NamespacedName: client.ObjectKey{Namespace: namespace, Name: name}}
}

func isOurGroup(ref *metav1.OwnerReference) bool {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && gv.Group == oauthv1alpha1.GroupVersion.Group
}

// now is the reconciler's time, to the second (what the Secret and status keep).
func (r *OAuthProviderReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now().UTC().Truncate(time.Second)
	}
	return r.Clock.Now().UTC().Truncate(time.Second)
}

// getOptional reads obj, returning nil (the zero T) when it does not exist.
func getOptional[T client.Object](ctx context.Context, c client.Reader, key client.ObjectKey, obj T) (T, error) {
	var zero T
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return zero, nil
		}
		return zero, fmt.Errorf("get %T %s: %w", obj, key.Name, err)
	}
	return obj, nil
}

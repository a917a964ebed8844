package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// The phases of an OAuthProvider reconcile, in order. Each reads and fills the scope;
// an error is transient and ends the pass (it is retried with backoff), while a
// problem only the user can fix sets scope.blocked and lets the remaining phases
// decide what they can still do.

// reconcileConfig renders the server's config and checks it as the server will. An
// invalid one blocks the deployment: CEL cannot see every rule the server enforces.
func (r *OAuthProviderReconciler) reconcileConfig(_ context.Context, s *providerScope) error {
	cfg, err := renderConfig(s.provider)
	s.config = cfg
	if err != nil {
		s.blocked = &blocker{reason: oauthv1alpha1.ReasonInvalidSpec, message: err.Error()}
		return nil
	}
	data, err := config.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("marshal config: %w", err)
	}
	s.configYAML = data
	return nil
}

// reconcileIdentity gives the server its ServiceAccount and the Role that lets it read
// its registry Secret.
func (r *OAuthProviderReconciler) reconcileIdentity(ctx context.Context, s *providerScope) error {
	p := s.provider
	for _, obj := range []client.Object{buildServiceAccount(p), buildRole(p), buildRoleBinding(p)} {
		if _, _, err := apply(ctx, r.Client, r.Scheme, p, obj); err != nil {
			return err
		}
	}
	return nil
}

// reconcileKeys makes sure the encryption key exists. It is generated once: a new key
// would make every upstream token stored in Redis unreadable, so a valid key is never
// replaced, whatever else changes.
func (r *OAuthProviderReconciler) reconcileKeys(ctx context.Context, s *providerScope) error {
	p := s.provider
	existing, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: p.Namespace, Name: keysSecretName(p)}, &corev1.Secret{})
	if err != nil {
		return err
	}
	var key []byte
	if existing != nil {
		key = existing.Data[encryptionKeyKey]
	}
	generated := !validEncryptionKey(key)
	if generated {
		if key, err = newEncryptionKey(); err != nil {
			return err
		}
	}
	obj, _, err := apply(ctx, r.Client, r.Scheme, p, buildKeysSecret(p, key))
	if err != nil {
		return err
	}
	s.keys = obj.(*corev1.Secret)
	if generated {
		r.Recorder.Eventf(p, s.keys, corev1.EventTypeNormal, "EncryptionKeyGenerated", "GenerateKey",
			"Generated the encryption key in Secret %s", keysSecretName(p))
	}
	return nil
}

// reconcileRegistry writes the registry Secret the server watches: one entry per
// MCPClient of this provider whose credentials are written. This reconciler is its
// only writer, so creating or deleting an MCPClient only has to re-enqueue the
// provider. Clients being deleted are left out, since envtest and a slow garbage
// collector may still show them.
func (r *OAuthProviderReconciler) reconcileRegistry(ctx context.Context, s *providerScope) error {
	p := s.provider
	var list oauthv1alpha1.MCPClientList
	if err := r.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingFields{indexClientProvider: p.Name}); err != nil {
		return fmt.Errorf("list MCPClients of %s: %w", p.Name, err)
	}
	slices.SortFunc(list.Items, func(a, b oauthv1alpha1.MCPClient) int { return strings.Compare(a.Name, b.Name) })
	entries := []config.Client{}
	var approvals []config.Approval
	seen := map[string]bool{}
	for i := range list.Items {
		mc := &list.Items[i]
		if !mc.DeletionTimestamp.IsZero() {
			continue
		}
		if approving(mc) {
			// The MCPClient reports an approval the server would not honour.
			if a, err := approvalEntry(s.config, mc); err == nil {
				approvals = append(approvals, a)
			}
			continue
		}
		entry, ok, err := r.entryFor(ctx, s.config, mc)
		if err != nil {
			return err
		}
		if ok && !seen[entry.ClientID] {
			seen[entry.ClientID] = true
			entries = append(entries, entry)
		}
	}
	data, err := config.MarshalClientsFile(config.ClientsFile{Clients: entries, Approvals: registryApprovals(approvals, seen)})
	if err != nil {
		return fmt.Errorf("marshal registry: %w", err)
	}
	if _, _, err := apply(ctx, r.Client, r.Scheme, p, buildRegistrySecret(p, data)); err != nil {
		return err
	}
	n := int32(len(entries))
	s.registered = &n
	return nil
}

// entryFor is mc's registry entry, if its credentials Secret is written and belongs
// to it, and the entry is one the server accepts (the MCPClient reports why not).
func (r *OAuthProviderReconciler) entryFor(ctx context.Context, cfg *config.Config, mc *oauthv1alpha1.MCPClient) (config.Client, bool, error) {
	creds, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: mc.Namespace, Name: credentialsSecretName(mc)}, &corev1.Secret{})
	if err != nil || creds == nil {
		return config.Client{}, false, err
	}
	// A Secret someone else wrote under that name must not register a client.
	if !ownedBy(creds, mc) {
		return config.Client{}, false, nil
	}
	entry, err := registryEntry(cfg, mc, creds)
	return entry, err == nil, nil
}

// reconcileInputs reads every Secret the pod mounts and hashes them with the config,
// so that a rotated Secret rolls the pods; all but the signing keys, which the server
// follows without a restart. A missing Secret or key blocks the deployment with a
// condition naming it; the Secret watch brings the provider back here when it appears.
func (r *OAuthProviderReconciler) reconcileInputs(ctx context.Context, s *providerScope) error {
	if s.blocked != nil {
		return nil
	}
	p := s.provider
	s.inputs = map[string]map[string][]byte{keysSecretName(p): s.keys.Data, adminSecretName(p): s.admin.Data}
	for _, in := range referencedSecrets(p) {
		secret, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: p.Namespace, Name: in.name}, &corev1.Secret{})
		if err != nil {
			return err
		}
		if secret == nil {
			s.blocked = &blocker{reason: oauthv1alpha1.ReasonSecretNotFound,
				message: fmt.Sprintf("Secret %s not found in namespace %s (needed for %s)", in.name, p.Namespace, in.volume)}
			return nil
		}
		for _, it := range in.items {
			if _, ok := secret.Data[it.Key]; !ok {
				s.blocked = &blocker{reason: oauthv1alpha1.ReasonSecretKeyNotFound,
					message: fmt.Sprintf("Secret %s has no key %q (needed for %s)", in.name, it.Key, in.volume)}
				return nil
			}
		}
		s.inputs[in.name] = secret.Data
	}
	s.hash = inputsHash(s.configYAML, hashedSecrets(p), s.inputs)
	return nil
}

// reconcileConfigMap writes the rendered config; never while blocked, so the running
// server keeps a config that works.
func (r *OAuthProviderReconciler) reconcileConfigMap(ctx context.Context, s *providerScope) error {
	if s.blocked != nil {
		return nil
	}
	_, _, err := apply(ctx, r.Client, r.Scheme, s.provider, buildConfigMap(s.provider, s.configYAML))
	return err
}

// reconcileDeployment writes the server's Deployment, or, while blocked, only reads it
// for the status: pods created now could not start.
func (r *OAuthProviderReconciler) reconcileDeployment(ctx context.Context, s *providerScope) error {
	p := s.provider
	if s.blocked != nil {
		d, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: p.Namespace, Name: serverName(p)}, &appsv1.Deployment{})
		s.deployment = d
		return err
	}
	before, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: p.Namespace, Name: serverName(p)}, &appsv1.Deployment{})
	if err != nil {
		return err
	}
	obj, _, err := apply(ctx, r.Client, r.Scheme, p, buildDeployment(p, r.AuthServerImage, s.hash))
	if err != nil {
		return err
	}
	s.deployment = obj.(*appsv1.Deployment)
	if old := podInputsHash(before); old != "" && old != s.hash {
		r.Recorder.Eventf(p, s.deployment, corev1.EventTypeNormal, "RollingOut", "UpdateDeployment",
			"Rolling out the authorization server: its configuration or a referenced Secret changed")
	}
	return nil
}

func podInputsHash(d *appsv1.Deployment) string {
	if d == nil {
		return ""
	}
	return d.Spec.Template.Annotations[inputsHashAnnotation]
}

func (r *OAuthProviderReconciler) reconcileService(ctx context.Context, s *providerScope) error {
	_, _, err := apply(ctx, r.Client, r.Scheme, s.provider, buildService(s.provider))
	return err
}

// reconcilePodDisruptionBudget keeps a budget while there is more than one replica and
// removes it when the provider goes back to one.
func (r *OAuthProviderReconciler) reconcilePodDisruptionBudget(ctx context.Context, s *providerScope) error {
	p := s.provider
	if pdb := buildPodDisruptionBudget(p); pdb != nil {
		_, _, err := apply(ctx, r.Client, r.Scheme, p, pdb)
		return err
	}
	existing, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: p.Namespace, Name: serverName(p)}, &policyv1.PodDisruptionBudget{})
	if err != nil || existing == nil || !ownedBy(existing, p) {
		return err
	}
	if err := r.Delete(ctx, existing); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete PodDisruptionBudget %s: %w", existing.Name, err)
	}
	return nil
}

// ownedBy reports whether owner is obj's controller.
func ownedBy(obj, owner client.Object) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == owner.GetUID()
}

// registryApprovals are the approvals the registry can hold: one per client ID (the
// first MCPClient by name wins; both say the same), none for a client the registry
// registers itself, which the server would refuse and which needs no approval.
func registryApprovals(approvals []config.Approval, registered map[string]bool) []config.Approval {
	var out []config.Approval
	seen := map[string]bool{}
	for _, a := range approvals {
		if registered[a.ClientID] || seen[a.ClientID] {
			continue
		}
		seen[a.ClientID] = true
		out = append(out, a)
	}
	return out
}

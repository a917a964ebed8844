package controllers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// The phases that keep the server's generated credentials beyond the encryption key:
// the JWT signing keys, which rotate, and the admin API's token, made once.

// reconcileSigningKeys keeps the signing keys Secret on its schedule (see
// signingkeys.go): it writes only when a key is added or removed, reports the keys in
// status and asks for a pass at the next moment the schedule changes.
func (r *OAuthProviderReconciler) reconcileSigningKeys(ctx context.Context, s *providerScope) error {
	p := s.provider
	now := r.now()
	existing, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: p.Namespace, Name: signingKeysSecretName(p)}, &corev1.Secret{})
	if err != nil {
		return err
	}
	var (
		data    []byte
		handled string
	)
	if existing != nil {
		data, handled = existing.Data[signingKeysKey], existing.Annotations[rotationHandledAnnotation]
	}
	current, parseErr := parseSigningKeysSecret(data)
	request := p.Annotations[oauthv1alpha1.RotateSigningKeyAnnotation]
	// With no keys yet, the first key answers any request already there.
	requested := request != "" && request != handled && len(current) > 0
	plan, err := planSigningKeys(current, now, signingPolicyOf(p), requested, newSigningKey)
	if err != nil {
		return err
	}
	if plan.changed {
		if data, err = marshalSigningKeys(plan.keys); err != nil {
			return err
		}
	}
	if request != "" {
		handled = request
	}
	obj, _, err := apply(ctx, r.Client, r.Scheme, p, buildSigningKeysSecret(p, data, handled))
	if err != nil {
		return err
	}
	// Keys the status reported, now gone: someone deleted the Secret or emptied it.
	lost := len(current) == 0 && parseErr == nil && p.Status.SigningKeys != nil && p.Status.SigningKeys.ActiveKeyID != ""
	r.recordSigningKeyEvents(p, obj, plan, parseErr, lost)

	s.signingKeys = &oauthv1alpha1.SigningKeysStatus{
		ActiveKeyID:         plan.active,
		NextRotation:        metav1.NewTime(plan.nextRotation),
		LastRotationRequest: handled,
	}
	for _, k := range plan.keys {
		s.signingKeys.PublishedKeyIDs = append(s.signingKeys.PublishedKeyIDs, k.KeyID)
	}
	// At least a second: a schedule in the past must not become a hot loop.
	s.requeueAfter = max(plan.next.Sub(now), time.Second)
	return nil
}

// recordSigningKeyEvents tells the user what changed in the signing keys.
func (r *OAuthProviderReconciler) recordSigningKeyEvents(p *oauthv1alpha1.OAuthProvider, secret client.Object, plan keyPlan, parseErr error, lost bool) {
	name := signingKeysSecretName(p)
	if k := plan.added; k != nil {
		switch {
		case parseErr != nil:
			r.Recorder.Eventf(p, secret, corev1.EventTypeWarning, "SigningKeysInvalid", "GenerateKey",
				"Secret %s held no usable signing keys (%v); generated %s key %s", name, parseErr, k.Algorithm, k.KeyID)
		case lost:
			r.Recorder.Eventf(p, secret, corev1.EventTypeWarning, "SigningKeysLost", "GenerateKey",
				"Secret %s lost its signing keys (deleted?); generated %s key %s: tokens signed by key %s no longer verify",
				name, k.Algorithm, k.KeyID, p.Status.SigningKeys.ActiveKeyID)
		case plan.reason == rotationInitial:
			r.Recorder.Eventf(p, secret, corev1.EventTypeNormal, "SigningKeyGenerated", "GenerateKey",
				"Generated %s signing key %s in Secret %s", k.Algorithm, k.KeyID, name)
		default:
			r.Recorder.Eventf(p, secret, corev1.EventTypeNormal, "SigningKeyRotated", "RotateKey",
				"Added %s signing key %s (%s), signing from %s", k.Algorithm, k.KeyID, rotationCause(plan.reason),
				k.ActivateAt.Format(time.RFC3339))
		}
	}
	if len(plan.dropped) > 0 {
		r.Recorder.Eventf(p, secret, corev1.EventTypeNormal, "SigningKeyRetired", "RetireKey",
			"Removed signing key(s) %s from Secret %s: no live token was signed by them", strings.Join(plan.dropped, ", "), name)
	}
}

func rotationCause(reason string) string {
	switch reason {
	case rotationRequest:
		return "requested by the annotation " + oauthv1alpha1.RotateSigningKeyAnnotation
	case rotationAlgorithm:
		return "spec.server.signingKeyAlgorithm changed"
	default:
		return "spec.server.signingKeyRotation elapsed"
	}
}

// signingPolicyOf reads the signing key settings of p, with the CRD's defaults for
// fields an older object lacks.
func signingPolicyOf(p *oauthv1alpha1.OAuthProvider) signingPolicy {
	srv := &p.Spec.Server
	pol := signingPolicy{
		algorithm:      string(srv.SigningKeyAlgorithm),
		rotation:       srv.SigningKeyRotation.Duration,
		accessTokenTTL: srv.TokenTTLs.AccessToken.Duration,
	}
	if pol.algorithm == "" {
		pol.algorithm = config.SigningES256
	}
	if pol.rotation <= 0 {
		pol.rotation = defaultSigningKeyRotation
	}
	if pol.accessTokenTTL <= 0 {
		pol.accessTokenTTL = defaultAccessTokenTTL
	}
	return pol
}

// reconcileAdminToken makes sure the admin API's token exists. Like the encryption
// key it is made once and kept while valid, so a CLI holding it keeps working.
func (r *OAuthProviderReconciler) reconcileAdminToken(ctx context.Context, s *providerScope) error {
	p := s.provider
	existing, err := getOptional(ctx, r.Client, client.ObjectKey{Namespace: p.Namespace, Name: adminSecretName(p)}, &corev1.Secret{})
	if err != nil {
		return err
	}
	var token []byte
	if existing != nil {
		token = existing.Data[adminTokenKey]
	}
	generated := !validAdminToken(token)
	if generated {
		if token, err = newAdminToken(); err != nil {
			return err
		}
	}
	obj, _, err := apply(ctx, r.Client, r.Scheme, p, buildAdminSecret(p, token))
	if err != nil {
		return err
	}
	s.admin = obj.(*corev1.Secret)
	if generated {
		r.Recorder.Eventf(p, s.admin, corev1.EventTypeNormal, "AdminTokenGenerated", "GenerateKey",
			"Generated the admin API token in Secret %s", adminSecretName(p))
	}
	return nil
}

// adminTokenBytes is the admin token's entropy.
const adminTokenBytes = 32

// newAdminToken returns base64url (unpadded) of 32 bytes from crypto/rand.
func newAdminToken() ([]byte, error) {
	b := make([]byte, adminTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate admin token: %w", err)
	}
	return []byte(base64.RawURLEncoding.EncodeToString(b)), nil
}

// validAdminToken reports whether a stored token is base64url of at least 32 bytes, so
// a good token (also one a person set) is kept and only a missing or weak one replaced.
func validAdminToken(b []byte) bool {
	s := strings.TrimRight(strings.TrimSpace(string(b)), "=")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(raw) >= adminTokenBytes
}

func buildSigningKeysSecret(p *oauthv1alpha1.OAuthProvider, keysJSON []byte, handledRequest string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: objectMeta(p, signingKeysSecretName(p)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{signingKeysKey: keysJSON},
	}
	if handledRequest != "" {
		s.Annotations = map[string]string{rotationHandledAnnotation: handledRequest}
	}
	return s
}

func buildAdminSecret(p *oauthv1alpha1.OAuthProvider, token []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(p, adminSecretName(p)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{adminTokenKey: token},
	}
}

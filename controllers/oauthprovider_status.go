package controllers

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

// providerObservation is everything an OAuthProvider's conditions are computed from.
type providerObservation struct {
	issuer     string
	blocked    *blocker
	deployment *appsv1.Deployment
}

// patchStatus computes the status from what the phases found and patches it, only if
// it changed. After a transient error the conditions keep what they said, except that
// Degraded carries the error, and observedGeneration stays behind: the status does not
// yet describe this generation. Conflicts from a stale cache are too common and too
// short-lived to report.
func (r *OAuthProviderReconciler) patchStatus(ctx context.Context, s *providerScope, reterr error) error {
	p := s.provider
	st := &p.Status
	// The signing keys are reported whatever failed later: the Secret holds them.
	if s.signingKeys != nil {
		st.SigningKeys = s.signingKeys
	}
	switch {
	case reterr == nil:
		setProviderStatus(st, providerObservation{issuer: s.config.Issuer, blocked: s.blocked, deployment: s.deployment}, p.Generation)
		if s.registered != nil {
			st.RegisteredClients = *s.registered
		}
		st.DynamicClients = s.dynamicClients
	case apierrors.IsConflict(reterr) || apierrors.IsAlreadyExists(reterr):
		return nil
	default:
		setCondition(&st.Conditions, p.Generation, oauthv1alpha1.ConditionDegraded, metav1.ConditionTrue,
			oauthv1alpha1.ReasonReconcileError, reterr.Error())
	}
	if equality.Semantic.DeepEqual(s.original.Status, p.Status) {
		return nil
	}
	recordReadyChange(r.Recorder, p, s.original.Status.Conditions, st.Conditions)
	if err := r.Status().Patch(ctx, p, client.MergeFrom(s.original)); err != nil {
		return fmt.Errorf("patch OAuthProvider status: %w", err)
	}
	return nil
}

// setProviderStatus fills st from o, for generation.
func setProviderStatus(st *oauthv1alpha1.OAuthProviderStatus, o providerObservation, generation int64) {
	for _, c := range []metav1.Condition{availableCondition(o), progressingCondition(o), degradedCondition(o), providerReadyCondition(o)} {
		setCondition(&st.Conditions, generation, c.Type, c.Status, c.Reason, c.Message)
	}
	st.ObservedGeneration = generation
	st.URL = o.issuer
	st.ReadyReplicas = 0
	if o.deployment != nil {
		st.ReadyReplicas = o.deployment.Status.ReadyReplicas
	}
}

// maxMessage keeps condition messages far below the API's 32768 limit: a message over
// it would make every status patch fail. Long ones are a list of spec problems.
const maxMessage = 4096

// setCondition sets a condition; its transition time changes only with its status,
// so an unchanged condition is byte-for-byte what was stored.
func setCondition(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	if len(message) > maxMessage {
		message = strings.ToValidUTF8(message[:maxMessage-3], "") + "..."
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: generation,
	})
}

// availableCondition: the Deployment reports minimum availability.
func availableCondition(o providerObservation) metav1.Condition {
	c := metav1.Condition{Type: oauthv1alpha1.ConditionAvailable}
	d := o.deployment
	switch {
	case d == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable,
			"the authorization server is not deployed"
	case deploymentCondition(d, appsv1.DeploymentAvailable) == corev1.ConditionTrue:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentAvailable, replicaMessage(d)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable, replicaMessage(d)
	}
	return c
}

// progressingCondition: a rollout is under way.
func progressingCondition(o providerObservation) metav1.Condition {
	c := metav1.Condition{Type: oauthv1alpha1.ConditionProgressing}
	if o.deployment == nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable,
			"the authorization server is not deployed"
		if o.blocked != nil {
			c.Reason, c.Message = o.blocked.reason, o.blocked.message
		}
		return c
	}
	if msg := rolloutInProgress(o.deployment); msg != "" {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentProgressing, msg
		return c
	}
	c.Status, c.Reason, c.Message = metav1.ConditionFalse, oauthv1alpha1.ReasonRolloutComplete, "the rollout is complete"
	return c
}

// degradedCondition: something needs a person.
func degradedCondition(o providerObservation) metav1.Condition {
	c := metav1.Condition{Type: oauthv1alpha1.ConditionDegraded}
	switch {
	case o.blocked != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, o.blocked.reason, o.blocked.message
	case stalled(o.deployment) != "":
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, oauthv1alpha1.ReasonProgressDeadlineExceeded, stalled(o.deployment)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, oauthv1alpha1.ReasonAsExpected, "no problems found"
	}
	return c
}

// providerReadyCondition is the summary: True when a login can work. The server's own
// readiness probe checks the store, the upstream and the keys, so available replicas
// mean all three are fine. A blocked spec is not Ready even while older pods serve:
// what the user asked for cannot run.
func providerReadyCondition(o providerObservation) metav1.Condition {
	c := metav1.Condition{Type: oauthv1alpha1.ConditionReady}
	available := availableCondition(o)
	switch {
	case o.blocked != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, o.blocked.reason, o.blocked.message
	case available.Status != metav1.ConditionTrue:
		c.Status, c.Reason = metav1.ConditionFalse, available.Reason
		c.Message = "waiting for the authorization server: " + available.Message
		if msg := stalled(o.deployment); msg != "" {
			c.Reason, c.Message = oauthv1alpha1.ReasonProgressDeadlineExceeded, msg
		}
	default:
		c.Status, c.Reason = metav1.ConditionTrue, oauthv1alpha1.ReasonReady
		c.Message = "the authorization server is available at " + o.issuer
	}
	return c
}

func replicaMessage(d *appsv1.Deployment) string {
	return fmt.Sprintf("%d of %d replicas available", d.Status.AvailableReplicas, desiredReplicas(d))
}

func desiredReplicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas != nil {
		return *d.Spec.Replicas
	}
	return 1
}

// rolloutInProgress says what the Deployment is still doing, or "" when done; the
// checks are kubectl rollout status's.
func rolloutInProgress(d *appsv1.Deployment) string {
	want, st := desiredReplicas(d), d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return "waiting for the Deployment controller to observe the new spec"
	case st.UpdatedReplicas < want:
		return fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		return fmt.Sprintf("%d old replicas pending termination", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		return fmt.Sprintf("%d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas)
	}
	return ""
}

// stalled returns the Deployment controller's message when the rollout has passed its
// progress deadline (pods crash or cannot be scheduled), else "".
func stalled(d *appsv1.Deployment) string {
	if d == nil {
		return ""
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return "the rollout is stuck: " + c.Message
		}
	}
	return ""
}

func deploymentCondition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) corev1.ConditionStatus {
	for _, c := range d.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// warningReasons are Ready reasons a person must act on.
var warningReasons = map[string]bool{
	oauthv1alpha1.ReasonInvalidSpec:              true,
	oauthv1alpha1.ReasonSecretNotFound:           true,
	oauthv1alpha1.ReasonSecretKeyNotFound:        true,
	oauthv1alpha1.ReasonSecretConflict:           true,
	oauthv1alpha1.ReasonProgressDeadlineExceeded: true,
}

// readyEvent decides whether a change of the Ready condition from old (nil when there
// was none) to cur deserves an event, and of which type. A change of status or reason
// does; a new message does only for a warning, where it names a different problem (a
// replica count ticking up is not news).
func readyEvent(old *metav1.Condition, cur *metav1.Condition) (eventType string, emit bool) {
	if cur == nil {
		return "", false
	}
	warning := warningReasons[cur.Reason]
	emit = old == nil || old.Status != cur.Status || old.Reason != cur.Reason || (warning && old.Message != cur.Message)
	if warning {
		return corev1.EventTypeWarning, emit
	}
	return corev1.EventTypeNormal, emit
}

// recordReadyChange emits an event when the Ready condition changed in a way a user
// should hear of.
func recordReadyChange(rec events.EventRecorder, obj client.Object, before, after []metav1.Condition) {
	cur := meta.FindStatusCondition(after, oauthv1alpha1.ConditionReady)
	if typ, emit := readyEvent(meta.FindStatusCondition(before, oauthv1alpha1.ConditionReady), cur); emit {
		rec.Eventf(obj, nil, typ, cur.Reason, "Reconcile", "%s", cur.Message)
	}
}

package controllers

import (
	"strings"
	"testing"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

// deployment is a Deployment of replicas whose status is as the Deployment controller
// reports a finished rollout, changed by mutate.
func deployment(replicas int32, mutate func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: 2},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas)},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: 2, Replicas: replicas, UpdatedReplicas: replicas,
			ReadyReplicas: replicas, AvailableReplicas: replicas,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"},
			},
		},
	}
	if mutate != nil {
		mutate(d)
	}
	return d
}

func unavailable(d *appsv1.Deployment) {
	d.Status.ReadyReplicas, d.Status.AvailableReplicas = 0, 0
	d.Status.Conditions[0].Status = corev1.ConditionFalse
}

func stuck(d *appsv1.Deployment) {
	unavailable(d)
	d.Status.Conditions[1] = appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "x" has timed out progressing.`}
}

var missingSecret = &blocker{reason: oauthv1alpha1.ReasonSecretNotFound, message: "Secret github-oauth not found"}

// want is a condition's status, reason and a phrase of its message.
type want struct {
	status metav1.ConditionStatus
	reason string
	phrase string
}

func expectCondition(t *testing.T, c metav1.Condition, w want) {
	t.Helper()
	g := NewWithT(t)
	g.Expect(c.Status).To(Equal(w.status), "status; message %q", c.Message)
	g.Expect(c.Reason).To(Equal(w.reason))
	g.Expect(c.Message).To(ContainSubstring(w.phrase))
}

func TestProviderConditions(t *testing.T) {
	const issuer = "https://auth.example.com"
	tests := []struct {
		name                                    string
		obs                                     providerObservation
		ready, available, progressing, degraded want
	}{
		{
			name:        "an available server is Ready",
			obs:         providerObservation{issuer: issuer, deployment: deployment(1, nil)},
			ready:       want{metav1.ConditionTrue, oauthv1alpha1.ReasonReady, "available at " + issuer},
			available:   want{metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentAvailable, "1 of 1 replicas available"},
			progressing: want{metav1.ConditionFalse, oauthv1alpha1.ReasonRolloutComplete, ""},
			degraded:    want{metav1.ConditionFalse, oauthv1alpha1.ReasonAsExpected, ""},
		},
		{
			name:        "a server whose pods are starting is not Ready yet",
			obs:         providerObservation{issuer: issuer, deployment: deployment(1, unavailable)},
			ready:       want{metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable, "0 of 1 replicas available"},
			available:   want{metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable, "0 of 1"},
			progressing: want{metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentProgressing, "0 of 1 updated replicas available"},
			degraded:    want{metav1.ConditionFalse, oauthv1alpha1.ReasonAsExpected, ""},
		},
		{
			name: "a rollout under way on an available server stays Ready",
			obs: providerObservation{issuer: issuer, deployment: deployment(2, func(d *appsv1.Deployment) {
				d.Generation = 3
			})},
			ready:       want{metav1.ConditionTrue, oauthv1alpha1.ReasonReady, ""},
			available:   want{metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentAvailable, ""},
			progressing: want{metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentProgressing, "observe the new spec"},
			degraded:    want{metav1.ConditionFalse, oauthv1alpha1.ReasonAsExpected, ""},
		},
		{
			name:        "old replicas still terminating is progress",
			obs:         providerObservation{issuer: issuer, deployment: deployment(2, func(d *appsv1.Deployment) { d.Status.Replicas = 3 })},
			ready:       want{metav1.ConditionTrue, oauthv1alpha1.ReasonReady, ""},
			available:   want{metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentAvailable, ""},
			progressing: want{metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentProgressing, "1 old replicas pending"},
			degraded:    want{metav1.ConditionFalse, oauthv1alpha1.ReasonAsExpected, ""},
		},
		{
			name:        "a missing Secret before anything ran names the Secret",
			obs:         providerObservation{issuer: issuer, blocked: missingSecret},
			ready:       want{metav1.ConditionFalse, oauthv1alpha1.ReasonSecretNotFound, "github-oauth"},
			available:   want{metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable, "not deployed"},
			progressing: want{metav1.ConditionFalse, oauthv1alpha1.ReasonSecretNotFound, "github-oauth"},
			degraded:    want{metav1.ConditionTrue, oauthv1alpha1.ReasonSecretNotFound, "github-oauth"},
		},
		{
			name:        "a spec the server refuses blocks Ready even while old pods serve",
			obs:         providerObservation{issuer: issuer, deployment: deployment(1, nil), blocked: &blocker{oauthv1alpha1.ReasonInvalidSpec, "spec.issuerURL: not allowed"}},
			ready:       want{metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidSpec, "spec.issuerURL"},
			available:   want{metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentAvailable, ""},
			progressing: want{metav1.ConditionFalse, oauthv1alpha1.ReasonRolloutComplete, ""},
			degraded:    want{metav1.ConditionTrue, oauthv1alpha1.ReasonInvalidSpec, "spec.issuerURL"},
		},
		{
			name:        "a rollout past its deadline is Degraded",
			obs:         providerObservation{issuer: issuer, deployment: deployment(1, stuck)},
			ready:       want{metav1.ConditionFalse, oauthv1alpha1.ReasonProgressDeadlineExceeded, "timed out"},
			available:   want{metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable, ""},
			progressing: want{metav1.ConditionTrue, oauthv1alpha1.ReasonDeploymentProgressing, ""},
			degraded:    want{metav1.ConditionTrue, oauthv1alpha1.ReasonProgressDeadlineExceeded, "timed out"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectCondition(t, providerReadyCondition(tt.obs), tt.ready)
			expectCondition(t, availableCondition(tt.obs), tt.available)
			expectCondition(t, progressingCondition(tt.obs), tt.progressing)
			expectCondition(t, degradedCondition(tt.obs), tt.degraded)
		})
	}
}

func TestSetProviderStatusIsStable(t *testing.T) {
	g := NewWithT(t)
	obs := providerObservation{issuer: "https://a.example", deployment: deployment(1, nil)}
	var st oauthv1alpha1.OAuthProviderStatus
	setProviderStatus(&st, obs, 4)
	first := st.DeepCopy()
	setProviderStatus(&st, obs, 4)
	g.Expect(st).To(Equal(*first), "a second pass over the same observation changes nothing")
	g.Expect(st.ObservedGeneration).To(Equal(int64(4)))
	g.Expect(st.URL).To(Equal("https://a.example"))
	g.Expect(st.ReadyReplicas).To(Equal(int32(1)))
	g.Expect(st.Conditions).To(HaveLen(4))
	for _, c := range st.Conditions {
		g.Expect(c.ObservedGeneration).To(Equal(int64(4)))
	}
}

func TestReadyEvent(t *testing.T) {
	cond := func(status metav1.ConditionStatus, reason, msg string) *metav1.Condition {
		return &metav1.Condition{Type: oauthv1alpha1.ConditionReady, Status: status, Reason: reason, Message: msg}
	}
	tests := []struct {
		name     string
		old, cur *metav1.Condition
		wantType string
		emit     bool
	}{
		{"the first Ready is news", nil, cond(metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable, "0 of 1"), corev1.EventTypeNormal, true},
		{"becoming Ready is news", cond(metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable, "0 of 1"), cond(metav1.ConditionTrue, oauthv1alpha1.ReasonReady, "ok"), corev1.EventTypeNormal, true},
		{"nothing changed is not", cond(metav1.ConditionTrue, oauthv1alpha1.ReasonReady, "ok"), cond(metav1.ConditionTrue, oauthv1alpha1.ReasonReady, "ok"), corev1.EventTypeNormal, false},
		{"a replica count ticking up is not", cond(metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable, "0 of 2"), cond(metav1.ConditionFalse, oauthv1alpha1.ReasonDeploymentUnavailable, "1 of 2"), corev1.EventTypeNormal, false},
		{"a missing Secret is a warning", cond(metav1.ConditionTrue, oauthv1alpha1.ReasonReady, "ok"), cond(metav1.ConditionFalse, oauthv1alpha1.ReasonSecretNotFound, "Secret a"), corev1.EventTypeWarning, true},
		{"another missing Secret is news", cond(metav1.ConditionFalse, oauthv1alpha1.ReasonSecretNotFound, "Secret a"), cond(metav1.ConditionFalse, oauthv1alpha1.ReasonSecretNotFound, "Secret b"), corev1.EventTypeWarning, true},
		{"an invalid spec is a warning", nil, cond(metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidSpec, "x"), corev1.EventTypeWarning, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			typ, emit := readyEvent(tt.old, tt.cur)
			g.Expect(emit).To(Equal(tt.emit))
			g.Expect(typ).To(Equal(tt.wantType))
		})
	}
}

func TestSetConditionKeepsMessagesWithinTheAPILimit(t *testing.T) {
	g := NewWithT(t)
	var conds []metav1.Condition
	setCondition(&conds, 1, oauthv1alpha1.ConditionReady, metav1.ConditionFalse, oauthv1alpha1.ReasonInvalidSpec, strings.Repeat("é", 40000))
	g.Expect(len(conds[0].Message)).To(BeNumerically("<=", maxMessage))
	g.Expect(utf8.ValidString(conds[0].Message)).To(BeTrue())
	g.Expect(conds[0].Message).To(HaveSuffix("..."))
}

package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

// clientObservation is everything an MCPClient's conditions are computed from.
type clientObservation struct {
	providerName string
	// providerReady is the provider's Ready condition; nil when the provider does not
	// exist (providerFound false) or has not reported yet.
	providerFound bool
	providerReady *metav1.Condition
	problem       *blocker
	registered    bool
	clientID      string
	// approval: the MCPClient approves an existing client (spec.approveClientID).
	approval bool
}

func (s *clientScope) observation() clientObservation {
	o := clientObservation{
		providerName:  s.client.Spec.ProviderRef.Name,
		providerFound: s.provider != nil,
		problem:       s.problem,
		registered:    s.registered,
		clientID:      s.client.Status.ClientID,
		approval:      approving(s.client),
	}
	if s.provider != nil {
		o.providerReady = meta.FindStatusCondition(s.provider.Status.Conditions, oauthv1alpha1.ConditionReady)
	}
	return o
}

// patchStatus computes the status and patches it when it changed; see the provider's
// patchStatus for the handling of errors.
func (r *MCPClientReconciler) patchStatus(ctx context.Context, s *clientScope, reterr error) error {
	mc := s.client
	switch {
	case reterr == nil:
		o := s.observation()
		for _, c := range []metav1.Condition{registeredCondition(o), clientReadyCondition(o)} {
			setCondition(&mc.Status.Conditions, mc.Generation, c.Type, c.Status, c.Reason, c.Message)
		}
		mc.Status.ObservedGeneration = mc.Generation
	case apierrors.IsConflict(reterr) || apierrors.IsAlreadyExists(reterr):
		return nil
	default:
		setCondition(&mc.Status.Conditions, mc.Generation, oauthv1alpha1.ConditionReady, metav1.ConditionFalse,
			oauthv1alpha1.ReasonReconcileError, reterr.Error())
	}
	if equality.Semantic.DeepEqual(s.original.Status, mc.Status) {
		return nil
	}
	recordReadyChange(r.Recorder, mc, s.original.Status.Conditions, mc.Status.Conditions)
	if err := r.Status().Patch(ctx, mc, client.MergeFrom(s.original)); err != nil {
		return fmt.Errorf("patch MCPClient status: %w", err)
	}
	return nil
}

// registeredCondition: the provider's registry lists the client as its spec says.
func registeredCondition(o clientObservation) metav1.Condition {
	c := metav1.Condition{Type: oauthv1alpha1.ConditionRegistered, Status: metav1.ConditionFalse}
	switch {
	case !o.providerFound:
		c.Reason, c.Message = oauthv1alpha1.ReasonProviderNotFound,
			fmt.Sprintf("OAuthProvider %s not found in this namespace", o.providerName)
	case o.problem != nil:
		c.Reason, c.Message = o.problem.reason, o.problem.message
	case !o.registered && o.approval:
		c.Reason, c.Message = oauthv1alpha1.ReasonApprovalPending,
			fmt.Sprintf("waiting for OAuthProvider %s to list the approval of client %s in its registry", o.providerName, o.clientID)
	case !o.registered:
		c.Reason, c.Message = oauthv1alpha1.ReasonRegistrationPending,
			fmt.Sprintf("waiting for OAuthProvider %s to list the client in its registry", o.providerName)
	case o.approval:
		c.Status, c.Reason = metav1.ConditionTrue, oauthv1alpha1.ReasonApproved
		c.Message = fmt.Sprintf("OAuthProvider %s lists client %s as approved: it may complete logins in approval mode", o.providerName, o.clientID)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, oauthv1alpha1.ReasonRegistered
		c.Message = fmt.Sprintf("registered with OAuthProvider %s as client %s", o.providerName, o.clientID)
	}
	return c
}

// clientReadyCondition is the summary: True when the client can log in, that is, it
// is registered and its provider's server is Ready.
func clientReadyCondition(o clientObservation) metav1.Condition {
	reg := registeredCondition(o)
	c := metav1.Condition{Type: oauthv1alpha1.ConditionReady, Status: metav1.ConditionFalse}
	switch {
	case reg.Status != metav1.ConditionTrue:
		c.Reason, c.Message = reg.Reason, reg.Message
	case o.providerReady == nil || o.providerReady.Status != metav1.ConditionTrue:
		c.Reason = oauthv1alpha1.ReasonProviderNotReady
		c.Message = fmt.Sprintf("OAuthProvider %s is not ready", o.providerName)
		if o.providerReady != nil && o.providerReady.Message != "" {
			c.Message += ": " + o.providerReady.Message
		}
	default:
		c.Status, c.Reason = metav1.ConditionTrue, oauthv1alpha1.ReasonReady
		c.Message = fmt.Sprintf("client %s can log in through OAuthProvider %s", o.clientID, o.providerName)
	}
	return c
}

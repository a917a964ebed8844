package controllers

import (
	"context"
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// Writing children quietly. controllerutil.CreateOrUpdate writes only when the object
// changed, so each mutate function below must be idempotent against what the apiserver
// stores. The apiserver fills defaults into specs (a Deployment's strategy, a
// container's terminationMessagePath, a Service's clusterIP...), so copying a built
// spec over a stored one would differ on every pass and write every time. Specs are
// therefore compared with equality.Semantic.DeepDerivative, which ignores fields the
// builder leaves unset, and copied only when a field the builder sets differs, or when
// the spec hash recorded on the object differs (DeepDerivative cannot see a field or
// list element the builder stopped setting).

// apply creates desired, owned by owner, or brings the stored object in line with it.
// It returns the stored object's state after the write and what was done.
func apply(ctx context.Context, c client.Client, scheme *runtime.Scheme, owner client.Object, desired client.Object) (client.Object, controllerutil.OperationResult, error) {
	obj, ok := desired.DeepCopyObject().(client.Object)
	if !ok {
		return nil, controllerutil.OperationResultNone, fmt.Errorf("%T is not a client.Object", desired)
	}
	res, err := controllerutil.CreateOrUpdate(ctx, c, obj, func() error {
		mergeMetadata(obj, desired)
		if err := copyContent(obj, desired); err != nil {
			return err
		}
		return controllerutil.SetControllerReference(owner, obj, scheme)
	})
	if err != nil {
		return nil, res, fmt.Errorf("apply %T %s: %w", desired, desired.GetName(), err)
	}
	return obj, res, nil
}

// mergeMetadata sets the labels and annotations the operator wants and leaves others
// (added by users or other controllers) alone.
func mergeMetadata(obj, desired client.Object) {
	obj.SetLabels(mergeMap(obj.GetLabels(), desired.GetLabels()))
	obj.SetAnnotations(mergeMap(obj.GetAnnotations(), desired.GetAnnotations()))
}

func mergeMap(dst, src map[string]string) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]string, len(src))
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// copyContent copies what the operator manages of desired onto obj, the stored object
// (or a fresh one being created).
func copyContent(obj, desired client.Object) error {
	switch o := obj.(type) {
	case *corev1.ServiceAccount:
		// Only metadata is managed; tokens and pull secrets are others' business.
	case *rbacv1.Role:
		o.Rules = desired.(*rbacv1.Role).Rules
	case *rbacv1.RoleBinding:
		d := desired.(*rbacv1.RoleBinding)
		o.RoleRef, o.Subjects = d.RoleRef, d.Subjects
	case *corev1.ConfigMap:
		o.Data = desired.(*corev1.ConfigMap).Data
	case *corev1.Secret:
		d := desired.(*corev1.Secret)
		o.Data = d.Data
		if o.Type == "" {
			o.Type = d.Type
		}
	case *appsv1.Deployment:
		d := desired.(*appsv1.Deployment)
		if needsSpecUpdate(o, d.Spec, o.Spec) {
			o.Spec = d.Spec
		}
		setSpecHash(o, d.Spec)
	case *corev1.Service:
		d := desired.(*corev1.Service)
		if needsSpecUpdate(o, d.Spec, o.Spec) {
			// The cluster IPs are allocated by the apiserver and cannot change.
			ips, ip := o.Spec.ClusterIPs, o.Spec.ClusterIP
			o.Spec = d.Spec
			o.Spec.ClusterIPs, o.Spec.ClusterIP = ips, ip
		}
		setSpecHash(o, d.Spec)
	case *policyv1.PodDisruptionBudget:
		d := desired.(*policyv1.PodDisruptionBudget)
		if needsSpecUpdate(o, d.Spec, o.Spec) {
			o.Spec = d.Spec
		}
		setSpecHash(o, d.Spec)
	default:
		return fmt.Errorf("no content copier for %T", obj)
	}
	return nil
}

// needsSpecUpdate reports whether the stored spec must be replaced by the desired one:
// the spec hash recorded on obj is not the desired spec's, or a field the desired spec
// sets has another value in the stored one (someone edited it), or a list it sets has
// grown.
func needsSpecUpdate(obj client.Object, desired, stored any) bool {
	return obj.GetAnnotations()[specHashAnnotation] != specHash(desired) ||
		!equality.Semantic.DeepDerivative(desired, stored) ||
		!sameListLengths(reflect.ValueOf(desired), reflect.ValueOf(stored))
}

// sameListLengths reports whether every non-empty list in desired has as many elements
// in stored, at any depth. DeepDerivative accepts a stored list longer than the
// desired one, so an element appended by hand (an environment variable, a sidecar, a
// volume mounting some other Secret) would stay. The apiserver's defaulting fills in
// fields and empty lists, never appends to a list we set, so this causes no write on
// an unchanged object. Maps may grow (kubectl rollout restart adds an annotation).
func sameListLengths(desired, stored reflect.Value) bool {
	if !desired.IsValid() || !stored.IsValid() || desired.Type() != stored.Type() {
		return true
	}
	switch desired.Kind() {
	case reflect.Pointer, reflect.Interface:
		if desired.IsNil() || stored.IsNil() {
			return true
		}
		return sameListLengths(desired.Elem(), stored.Elem())
	case reflect.Struct:
		for i := range desired.NumField() {
			if !sameListLengths(desired.Field(i), stored.Field(i)) {
				return false
			}
		}
	case reflect.Slice:
		if desired.Len() == 0 {
			return true
		}
		if desired.Len() != stored.Len() {
			return false
		}
		for i := range desired.Len() {
			if !sameListLengths(desired.Index(i), stored.Index(i)) {
				return false
			}
		}
	case reflect.Map:
		for _, k := range desired.MapKeys() {
			if !sameListLengths(desired.MapIndex(k), stored.MapIndex(k)) {
				return false
			}
		}
	}
	return true
}

func setSpecHash(obj client.Object, spec any) {
	obj.SetAnnotations(mergeMap(obj.GetAnnotations(), map[string]string{specHashAnnotation: specHash(spec)}))
}

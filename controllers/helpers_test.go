package controllers

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

// Helpers of the envtest specs.

// createSecret creates an Opaque Secret with data.
func createSecret(ns, name string, data map[string]string) *corev1.Secret {
	GinkgoHelper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
	return s
}

// githubProvider is a GitHub provider named name whose secret is github-oauth.
func githubProvider(ns, name string) *oauthv1alpha1.OAuthProvider {
	p := validProvider(ns)
	p.GenerateName, p.Name = "", name
	return p
}

// get reads obj back from the apiserver into obj, failing the spec when it cannot.
func get(obj client.Object, ns, name string) client.Object {
	GinkgoHelper()
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)).To(Succeed())
	return obj
}

// exists returns a function for Eventually that reports whether the object exists.
func exists(obj client.Object, ns, name string) func() error {
	return func() error { return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj) }
}

// condition returns a function for Eventually that reads an object's condition.
func condition(obj client.Object, typ string) func() *metav1.Condition {
	key := client.ObjectKeyFromObject(obj)
	return func() *metav1.Condition {
		fresh := obj.DeepCopyObject().(client.Object)
		if err := k8sClient.Get(ctx, key, fresh); err != nil {
			return nil
		}
		switch o := fresh.(type) {
		case *oauthv1alpha1.OAuthProvider:
			return meta.FindStatusCondition(o.Status.Conditions, typ)
		case *oauthv1alpha1.MCPClient:
			return meta.FindStatusCondition(o.Status.Conditions, typ)
		}
		return nil
	}
}

// haveCondition matches a condition of this status and reason.
func haveCondition(status metav1.ConditionStatus, reason string) OmegaMatcher {
	return And(Not(BeNil()), HaveField("Status", status), HaveField("Reason", reason))
}

// controlledBy matches an object whose controller is owner.
func controlledBy(owner client.Object) OmegaMatcher {
	return WithTransform(func(o client.Object) *metav1.OwnerReference { return metav1.GetControllerOf(o) },
		And(Not(BeNil()), HaveField("UID", owner.GetUID()), HaveField("Name", owner.GetName())))
}

// makeAvailable plays the Deployment controller: it reports the provider's Deployment
// rolled out and available.
func makeAvailable(ns, provider string) {
	GinkgoHelper()
	Eventually(func() error {
		d := &appsv1.Deployment{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: provider + "-authserver"}, d); err != nil {
			return err
		}
		n := *d.Spec.Replicas
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			Conditions: []appsv1.DeploymentCondition{{
				Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
				LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
		}
		return k8sClient.Status().Update(ctx, d)
	}).Should(Succeed())
}

// podHash is the Deployment's inputs hash, "" when there is no Deployment.
func podHash(ns, provider string) func() string {
	return func() string {
		d := &appsv1.Deployment{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: provider + "-authserver"}, d); err != nil {
			return ""
		}
		return d.Spec.Template.Annotations[inputsHashAnnotation]
	}
}

// touch sets an annotation on obj, which makes its reconciler run again without any
// change to its spec. A merge patch, as kubectl annotate sends: an Update from Go
// would re-encode the spec ("5m" becomes "5m0s") and bump the generation.
func touch(obj client.Object, value string) {
	GinkgoHelper()
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{"test.mcpauth.dev/touched":%q}}}`, value))
	Expect(k8sClient.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

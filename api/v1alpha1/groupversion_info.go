// Package v1alpha1 holds the mcpauth API: OAuthProvider, an upstream identity provider
// and the authorization server the operator runs for it, and MCPClient, an MCP client
// pre-registered with that server.
//
// The types import only apimachinery and core/v1, so anyone can vendor them without the
// operator. What the schema can say it says (OpenAPI markers and CEL rules, so the
// apiserver refuses a bad object at `kubectl apply`); what it cannot, the reconcilers
// report as a condition.
//
// +kubebuilder:object:generate=true
// +groupName=oauth.mcpauth.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "oauth.mcpauth.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

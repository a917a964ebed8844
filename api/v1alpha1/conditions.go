package v1alpha1

// Condition types. Ready is the one summary a user reads: for an OAuthProvider it means
// a login can work (store reachable, upstream discovered, keys loaded, server
// available); the others say why not.
const (
	// ConditionReady summarises the object: True when it is usable.
	ConditionReady = "Ready"
	// ConditionAvailable: the authorization server has the minimum replicas available.
	ConditionAvailable = "Available"
	// ConditionProgressing: a rollout of the authorization server is under way.
	ConditionProgressing = "Progressing"
	// ConditionDegraded: something is wrong that needs a person (bad spec, missing
	// Secret, failing pods).
	ConditionDegraded = "Degraded"
	// ConditionRegistered: the MCPClient's registration reached its server.
	ConditionRegistered = "Registered"
)

// Condition reasons, CamelCase as metav1.Condition requires.
const (
	ReasonReady                 = "Ready"
	ReasonReconciling           = "Reconciling"
	ReasonInvalidSpec           = "InvalidSpec"
	ReasonSecretNotFound        = "SecretNotFound"
	ReasonSecretKeyNotFound     = "SecretKeyNotFound"
	ReasonDeploymentUnavailable = "DeploymentUnavailable"
	ReasonDeploymentProgressing = "DeploymentProgressing"
	ReasonDeploymentAvailable   = "DeploymentAvailable"
	ReasonRolloutComplete       = "RolloutComplete"
	ReasonAsExpected            = "AsExpected"
	ReasonProviderNotFound      = "ProviderNotFound"
	ReasonProviderNotReady      = "ProviderNotReady"
	ReasonRegistered            = "Registered"
	// ReasonApproved: an MCPClient with approveClientID is listed as approved in the
	// provider's registry.
	ReasonApproved = "Approved"
	// ReasonApprovalPending: the provider has yet to list the approval.
	ReasonApprovalPending = "ApprovalPending"

	// ReasonProgressDeadlineExceeded: the Deployment's rollout has stopped making
	// progress (its Progressing condition says so); pods are likely crash-looping.
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ReasonReconcileError: the operator failed to reconcile for a reason it retries
	// (an apiserver error, say); the message has the error.
	ReasonReconcileError = "ReconcileError"
	// ReasonSecretConflict: a Secret the operator should write exists and belongs to
	// someone else, so the operator leaves it alone.
	ReasonSecretConflict = "SecretConflict"
	// ReasonRegistrationPending: the client's credentials are written and the
	// provider has yet to add it to the server's registry.
	ReasonRegistrationPending = "RegistrationPending"
)

// Package kubeclients feeds the authorization server's pre-registered clients from one
// Kubernetes Secret, the registry the operator writes from MCPClient resources.
//
// It is the one place the server reads the Kubernetes API (DESIGN: authserver knows
// nothing of the operator; an adapter does this behind a small interface of the
// server's). It watches a single Secret, named by config.ClientsSecret, with a
// metadata.name field selector in a single namespace, so the server's RBAC can be a
// Role granting get, list and watch on exactly that Secret (resourceNames) and nothing
// else. A watch rather than the mounted file: the kubelet syncs Secret volumes every
// minute or so, while an MCPClient should work seconds after it is applied.
//
// It talks to the core/v1 API through a REST client with a scheme of core/v1 alone,
// not client-go's clientset: the clientset links in, and initialises at start, every
// API group Kubernetes has, which was more than half of the server's memory
// (docs/performance.md).
package kubeclients

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/mcpauth/mcpauth/authserver/config"
)

// EnvPodNamespace names the environment variable holding the pod's namespace (set from
// the downward API by the operator's Deployment); it is the Secret's namespace when
// config.ClientsSecret leaves it empty.
const EnvPodNamespace = "POD_NAMESPACE"

// Sink receives the complete list of clients each time the Secret changes. A deleted
// Secret, or one without the key, is an empty list: its clients are gone.
type Sink interface {
	ReplaceClients([]config.Client) error
}

// ApprovalSink is a Sink that also takes the Secret's approvals (the clients approved
// for approval mode, see config.ClientsFile), after its clients, on every change.
type ApprovalSink interface {
	Sink
	ReplaceApprovals([]config.Approval) error
}

// Watcher keeps a Sink in step with one Secret. Create it with New and call Run.
type Watcher struct {
	ref      config.ClientsSecret
	sink     Sink
	log      *slog.Logger
	informer cache.SharedIndexInformer
	// kick wakes Run after an informer event; one pending wake-up is enough, because
	// Run always reads the latest object, so bursts of events coalesce.
	kick   chan struct{}
	synced atomic.Bool
	// lastVersion is the resourceVersion last handed to the sink ("" for none yet,
	// "-" for an absent Secret); only Run touches it.
	lastVersion string
}

// New returns a Watcher of the Secret ref names, through core, a REST client of the
// core/v1 API: NewClient's, or a clientset's CoreV1().RESTClient(). An empty
// ref.Namespace means the pod's own namespace (POD_NAMESPACE). log may be nil.
func New(core rest.Interface, ref config.ClientsSecret, sink Sink, log *slog.Logger) (*Watcher, error) {
	if ref.Namespace == "" {
		ref.Namespace = os.Getenv(EnvPodNamespace)
	}
	switch {
	case ref.Namespace == "":
		return nil, fmt.Errorf("clients Secret %s: no namespace given and %s is not set", ref.Name, EnvPodNamespace)
	case ref.Name == "" || ref.Key == "":
		return nil, errors.New("clients Secret: name and key are required")
	case sink == nil:
		return nil, errors.New("clients Secret: a sink is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		ref:  ref,
		sink: sink,
		log:  log.With("secret", ref.Namespace+"/"+ref.Name, "key", ref.Key),
		kick: make(chan struct{}, 1),
	}
	// No resync: nothing changes between events, and a resync would only repeat them.
	w.informer = cache.NewSharedIndexInformer(listWatch(core, ref), &corev1.Secret{}, 0, cache.Indexers{})
	if _, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.wake() },
		UpdateFunc: func(any, any) { w.wake() },
		DeleteFunc: func(any) { w.wake() },
	}); err != nil {
		return nil, fmt.Errorf("clients Secret: %w", err)
	}
	return w, nil
}

// scheme knows core/v1 and nothing else: all the watch decodes.
var (
	scheme         = runtime.NewScheme()
	codecs         = serializer.NewCodecFactory(scheme)
	parameterCodec = runtime.NewParameterCodec(scheme)
)

func init() {
	if err := corev1.AddToScheme(scheme); err != nil {
		panic(err) // a static registration: fails in every test or never
	}
}

// NewClient returns a REST client of the core/v1 API for cfg, what New needs.
func NewClient(cfg *rest.Config) (rest.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = codecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return rc, nil
}

// InClusterClient returns NewClient for the pod's own ServiceAccount, for a server
// running in Kubernetes.
func InClusterClient() (rest.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
	}
	return NewClient(cfg)
}

// listWatch lists and watches only the named Secret: the field selector is what lets
// RBAC authorize list and watch against resourceNames.
func listWatch(core rest.Interface, ref config.ClientsSecret) *cache.ListWatch {
	selector := fields.OneTermEqualSelector("metadata.name", ref.Name).String()
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			list := &corev1.SecretList{}
			err := core.Get().Namespace(ref.Namespace).Resource("secrets").
				VersionedParams(&opts, parameterCodec).Do(ctx).Into(list)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			opts.Watch = true
			return core.Get().Namespace(ref.Namespace).Resource("secrets").
				VersionedParams(&opts, parameterCodec).Watch(ctx)
		},
	}
}

func (w *Watcher) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run watches until ctx ends, calling the sink once the first list has arrived (with
// an empty list if the Secret does not exist yet) and after every change. It returns
// nil when ctx ends, or ctx's error if it ends before the first list.
func (w *Watcher) Run(ctx context.Context) error {
	go w.informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		return fmt.Errorf("clients Secret %s/%s: %w", w.ref.Namespace, w.ref.Name, ctx.Err())
	}
	w.apply()
	w.synced.Store(true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
			w.apply()
		}
	}
}

// HasSynced reports whether the sink has received the Secret's contents at least once,
// so a readiness check can wait for the registry before accepting logins.
func (w *Watcher) HasSynced() bool {
	return w.synced.Load()
}

// apply hands the current contents of the Secret to the sink, unless this version was
// handed over already. A Secret that does not parse keeps the previous clients: a bad
// edit should not log every user of every client out; the error is logged instead.
func (w *Watcher) apply() {
	obj, exists, err := w.informer.GetStore().GetByKey(w.ref.Namespace + "/" + w.ref.Name)
	if err != nil {
		w.log.Error("read clients Secret from the informer cache", "error", err)
		return
	}
	version, file, err := "-", config.ClientsFile{Clients: []config.Client{}}, error(nil)
	if exists {
		secret := obj.(*corev1.Secret)
		version = secret.ResourceVersion
		file, err = parse(secret, w.ref.Key)
	}
	clients := file.Clients
	if version == w.lastVersion {
		return
	}
	w.lastVersion = version
	if err != nil {
		w.log.Error("clients Secret does not parse; keeping the previous clients", "error", err)
		return
	}
	if err := w.sink.ReplaceClients(clients); err != nil {
		w.log.Error("clients refused; keeping the previous clients", "error", err, "clients", len(clients))
		return
	}
	if as, ok := w.sink.(ApprovalSink); ok {
		if err := as.ReplaceApprovals(file.Approvals); err != nil {
			w.log.Error("approvals refused; keeping the previous approvals", "error", err, "approvals", len(file.Approvals))
		}
	}
	w.log.Info("clients updated", "clients", len(clients), "approvals", len(file.Approvals), "resourceVersion", version)
}

// parse reads the clients file in key; a missing key means no clients.
func parse(secret *corev1.Secret, key string) (config.ClientsFile, error) {
	data, ok := secret.Data[key]
	if !ok {
		return config.ClientsFile{Clients: []config.Client{}}, nil
	}
	f, err := config.ParseClientsFile(data)
	if err != nil {
		return f, fmt.Errorf("key %s: %w", key, err)
	}
	if f.Clients == nil {
		f.Clients = []config.Client{}
	}
	return f, nil
}

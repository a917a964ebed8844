package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/internal/testutil/kubeenv"
)

// These specs run against a real kube-apiserver and etcd (envtest), with the CRDs
// from config/crd/bases installed and a manager running both reconcilers. There is no
// kube-controller-manager: no pods, no garbage collection, and Deployment status is
// whatever a spec sets.

// testImage is the manager's --authserver-image in these specs.
const testImage = "example.com/mcpauth:test"

var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	// calls counts the manager's API calls, per namespace.
	calls = &callCounter{writes: map[string][]string{}, reads: map[string]int{}}
	// testClock is the reconcilers' clock: real time plus an offset specs move
	// forward to see a signing key schedule of weeks play out.
	testClock = &offsetClock{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.TODO())
	SetDefaultEventuallyTimeout(10 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)

	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(oauthv1alpha1.AddToScheme(scheme)).To(Succeed())

	var err error
	testEnv, err = kubeenv.New()
	Expect(err).NotTo(HaveOccurred())
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		NewClient:              calls.newClient,
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(SetupWithManager(ctx, mgr, Options{AuthServerImage: testImage, Clock: testClock})).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// offsetClock is the real clock moved forward by Step. Time keeps flowing, so specs
// that never step it see the real time; it never goes back, so stepping it in one
// spec cannot make another spec's keys look newer than they are.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the real time plus the offset.
func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Since returns the time elapsed since t on this clock.
func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Step moves the clock forward by d.
func (c *offsetClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// callCounter wraps the manager's client to count, per namespace, the writes the
// reconcilers make and the times they read an OAuthProvider or MCPClient (a sign that
// a reconcile ran).
type callCounter struct {
	mu sync.Mutex
	// writes lists "verb Kind name" of each write, so a failure says what was written.
	writes map[string][]string
	reads  map[string]int
}

func (c *callCounter) newClient(config *rest.Config, options client.Options) (client.Client, error) {
	inner, err := client.NewWithWatch(config, options)
	if err != nil {
		return nil, err
	}
	return interceptor.NewClient(inner, interceptor.Funcs{
		Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			switch obj.(type) {
			case *oauthv1alpha1.OAuthProvider, *oauthv1alpha1.MCPClient:
				c.read(key.Namespace)
			}
			return cl.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			c.write("Create", obj)
			return cl.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			c.write("Update", obj)
			return cl.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, cl client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			c.write("Patch", obj)
			return cl.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			c.write("Delete", obj)
			return cl.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, cl client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			c.write("Update "+sub, obj)
			return cl.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, cl client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			c.write("Patch "+sub, obj)
			return cl.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}), nil
}

func (c *callCounter) read(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads[ns]++
}

func (c *callCounter) write(verb string, obj client.Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kind := fmt.Sprintf("%T", obj)
	c.writes[obj.GetNamespace()] = append(c.writes[obj.GetNamespace()], verb+" "+kind+" "+obj.GetName())
}

// Writes lists the writes the manager made in namespace ns.
func (c *callCounter) Writes(ns string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.writes[ns])
}

// Reads returns the number of OAuthProvider and MCPClient reads in namespace ns.
func (c *callCounter) Reads(ns string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[ns]
}

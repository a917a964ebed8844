package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/controllers"
	"github.com/mcpauth/mcpauth/internal/testutil/kubeenv"
)

// controlPlaneStopTimeout bounds how long kube-apiserver and etcd each get to exit on
// SIGTERM before they are killed; their state is thrown away anyway.
const controlPlaneStopTimeout = 5 * time.Second

// startControlPlane is step 1: envtest's kube-apiserver and etcd with the CRDs, kept
// running, and a kubeconfig for a system:masters user at a fixed path.
func (d *dev) startControlPlane(ctx context.Context) error {
	env, err := kubeenv.New()
	if err != nil {
		return withHint(err, "run `make envtest`")
	}
	deadline, _ := ctx.Deadline()
	env.ControlPlaneStartTimeout = time.Until(deadline)
	env.ControlPlaneStopTimeout = controlPlaneStopTimeout
	apiLog, err := d.logFile("kube-apiserver")
	if err != nil {
		return err
	}
	etcdLog, err := d.logFile("etcd")
	if err != nil {
		return err
	}
	api := env.ControlPlane.GetAPIServer()
	api.Out, api.Err = apiLog, apiLog
	// The list-cost estimator's refresh can hold kube-apiserver's shutdown for many
	// seconds (it waits on a watch cache that is already stopped); nothing here needs
	// its estimates, and Ctrl-C should take a second.
	api.Configure().Append("feature-gates", "SizeBasedListCostEstimate=false")
	env.ControlPlane.Etcd = &envtest.Etcd{Out: etcdLog, Err: etcdLog}

	// Start cannot be cancelled: run it aside, so Ctrl-C and the step's timeout are
	// answered at once. Stopping waits for it, then kills what it started.
	started := make(chan error, 1)
	go func() {
		cfg, err := env.Start()
		if err == nil {
			d.restConfig = cfg
		}
		started <- err
	}()
	d.onStop("stopping the control plane (kube-apiserver, etcd)", func() error {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			// Still starting: what it started is killed by the final sweep.
			return errors.New("it was still starting; killed")
		}
		return env.Stop()
	})
	select {
	case err = <-started:
		started <- err // for the stop above
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		return withHint(err, "see %s and %s; `make envtest` rebuilds the assets", d.logPath("kube-apiserver"), d.logPath("etcd"))
	}
	_ = writePidfile(d.pidfile())

	user, err := env.AddUser(envtest.User{Name: "dev", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add the kubeconfig's user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	d.kubeconfig = filepath.Join(d.o.dir, "kubeconfig")
	if err := os.WriteFile(d.kubeconfig, kc, 0o600); err != nil {
		return err
	}
	d.onStop("removing "+d.rel(d.kubeconfig), func() error { return os.Remove(d.kubeconfig) })

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = oauthv1alpha1.AddToScheme(scheme)
	if d.k8s, err = client.New(d.restConfig, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	if d.clientset, err = kubernetes.NewForConfig(d.restConfig); err != nil {
		return err
	}
	d.note("kube-apiserver %s", d.restConfig.Host)
	d.note("kubeconfig    %s", d.rel(d.kubeconfig))
	return nil
}

// startOperator is step 2: the operator's reconcilers in a controller-runtime manager,
// as cmd/manager runs them, without metrics, probes or leader election.
func (d *dev) startOperator(ctx context.Context) error {
	w, err := d.logFile("operator")
	if err != nil {
		return err
	}
	logger := logr.FromSlogHandler(slog.NewTextHandler(w, nil))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = oauthv1alpha1.AddToScheme(scheme)
	mgr, err := ctrl.NewManager(d.restConfig, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 logger,
	})
	if err != nil {
		return err
	}
	// The manager runs on its own context, so shutdown stops it before the control
	// plane rather than together with everything.
	mctx, stop := context.WithCancel(context.Background())
	if err := controllers.SetupWithManager(mctx, mgr, controllers.Options{AuthServerImage: "mcpauth:dev"}); err != nil {
		stop()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(mctx); err != nil || mctx.Err() == nil {
			d.componentDied("the operator", err)
		}
	}()
	d.onStop("stopping the operator", func() error {
		stop()
		select {
		case <-done:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("still stopping after 10s; going on")
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("the operator's caches did not sync")
	}
	d.note("reconcilers of OAuthProvider and MCPClient; log %s", d.logPath("operator"))
	return nil
}

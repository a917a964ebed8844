// Package devkubelet does, for tests and `make dev`, the part of a kubelet that the
// authorization server needs where no kubelet runs (envtest): it reads the Deployment
// the operator rendered for an OAuthProvider, writes the files its volumes mount
// (ConfigMap and Secret items) under a root directory, and loads the server's
// configuration from there with its paths moved under that root. What then runs in
// process is exactly what the operator rendered.
package devkubelet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mcpauth/mcpauth/authserver/config"
)

// Pod is a server pod materialised on the local file system.
type Pod struct {
	// Root is the directory that stands for the container's file system.
	Root string
	// Config is the server's configuration, paths under Root, ready for app.New.
	Config *config.Config
	// Env is the container's environment as the kubelet would set it.
	Env map[string]string
	// Deployment is what the pod was made from.
	Deployment *appsv1.Deployment
}

// Getenv returns the container's environment variable, for app.Options.Getenv.
func (p *Pod) Getenv(key string) string { return p.Env[key] }

// Materialize writes the files of the first container of Deployment name in namespace
// under root and returns the pod's configuration. Call it again after a Secret or
// ConfigMap changed to see what a rolled pod would see.
func Materialize(ctx context.Context, c client.Reader, namespace, name, root string) (*Pod, error) {
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &d); err != nil {
		return nil, fmt.Errorf("get deployment %s/%s: %w", namespace, name, err)
	}
	if len(d.Spec.Template.Spec.Containers) == 0 {
		return nil, fmt.Errorf("deployment %s/%s has no container", namespace, name)
	}
	ctr := d.Spec.Template.Spec.Containers[0]
	if err := writeVolumes(ctx, c, &d, root); err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = namespace
		default:
			return nil, fmt.Errorf("env %s: only values and metadata.namespace are supported here", e.Name)
		}
	}
	path, err := configPath(append(append([]string{}, ctr.Command...), ctr.Args...))
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(filepath.Join(root, path), func(k string) string { return env[k] })
	if err != nil {
		return nil, err
	}
	relocate(cfg, root)
	if cfg.ClientsSecret != nil && cfg.ClientsSecret.Namespace == "" {
		// The server resolves this from POD_NAMESPACE in its own environment; in
		// process that would be the test's, so say it here.
		cfg.ClientsSecret.Namespace = namespace
	}
	return &Pod{Root: root, Config: cfg, Env: env, Deployment: &d}, nil
}

// Refresh writes pod's volumes again from the ConfigMaps and Secrets as they are now,
// as the kubelet does for a running pod's directory mounts: a server that follows a
// file (the signing keys) sees the change without a restart. Files whose content is
// unchanged are left alone, so a watcher sees only real changes.
func Refresh(ctx context.Context, c client.Reader, pod *Pod) error {
	return writeVolumes(ctx, c, pod.Deployment, pod.Root)
}

// writeVolumes writes what the first container of d mounts under root.
func writeVolumes(ctx context.Context, c client.Reader, d *appsv1.Deployment, root string) error {
	volumes := map[string]corev1.Volume{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			return fmt.Errorf("volume mount %s names no volume", m.Name)
		}
		if err := writeVolume(ctx, c, d.Namespace, v, filepath.Join(root, m.MountPath)); err != nil {
			return fmt.Errorf("volume %s: %w", m.Name, err)
		}
	}
	return nil
}

// configPath finds the value of --config on the command line.
func configPath(args []string) (string, error) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v, nil
		}
		if a == "--config" && i+1 < len(args) {
			return args[i+1], nil
		}
	}
	return "", fmt.Errorf("the container's command line has no --config: %q", args)
}

// writeVolume writes what a ConfigMap, Secret or emptyDir volume would show.
func writeVolume(ctx context.Context, c client.Reader, namespace string, v corev1.Volume, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var data map[string][]byte
	var items []corev1.KeyToPath
	switch {
	case v.ConfigMap != nil:
		var cm corev1.ConfigMap
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: v.ConfigMap.Name}, &cm); err != nil {
			return fmt.Errorf("get configmap %s: %w", v.ConfigMap.Name, err)
		}
		data = map[string][]byte{}
		for k, s := range cm.Data {
			data[k] = []byte(s)
		}
		items = v.ConfigMap.Items
	case v.Secret != nil:
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: v.Secret.SecretName}, &s); err != nil {
			return fmt.Errorf("get secret %s: %w", v.Secret.SecretName, err)
		}
		data, items = s.Data, v.Secret.Items
	case v.EmptyDir != nil:
		return nil
	default:
		return fmt.Errorf("unsupported volume source")
	}
	if len(items) == 0 {
		for k := range data {
			items = append(items, corev1.KeyToPath{Key: k, Path: k})
		}
	}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %s is missing", it.Key)
		}
		p := filepath.Join(dir, it.Path)
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		// Write and rename, as the kubelet swaps files atomically; watchers never see
		// half a file.
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	return nil
}

// relocate moves every file path of cfg under root.
func relocate(cfg *config.Config, root string) {
	move := func(p *string) {
		if *p != "" && filepath.IsAbs(*p) {
			*p = filepath.Join(root, *p)
		}
	}
	move(&cfg.Upstream.ClientSecretFile)
	move(&cfg.Secrets.EncryptionKeyFile)
	move(&cfg.Secrets.SigningKeysFile)
	move(&cfg.Secrets.AdminTokenFile)
	move(&cfg.TLS.CertFile)
	move(&cfg.TLS.KeyFile)
	move(&cfg.ClientsFile)
	if r := cfg.Store.Redis; r != nil {
		move(&r.PasswordFile)
		move(&r.TLS.CAFile)
	}
	for i := range cfg.Clients {
		move(&cfg.Clients[i].SecretFile)
	}
}

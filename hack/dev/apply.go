package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// applyManifests is step 4: kubectl apply of hack/dev/manifests, as a person would,
// through the kubeconfig written in step 1. The applied copies are under bin/dev, with
// the URLs moved when a port flag moved them.
func (d *dev) applyManifests(ctx context.Context) error {
	args := []string{"--kubeconfig", d.kubeconfig, "apply"}
	for _, f := range d.manifests.files {
		args = append(args, "-f", f)
	}
	out, err := exec.CommandContext(ctx, d.kubectl, args...).CombinedOutput()
	if err != nil {
		return withHint(fmt.Errorf("kubectl apply: %w\n%s", err, strings.TrimSpace(string(out))),
			"the message names the field; fix it in %s", d.rel(d.o.manifests))
	}
	d.note("kubectl apply -f %s/", d.rel(d.o.manifests))
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		d.note("  %s", l)
	}
	return nil
}

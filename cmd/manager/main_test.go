package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestManagerNeverLinksTheServer keeps DESIGN's import rule: the operator renders the
// server's config and never touches tokens, so the manager binary links neither the
// server's handlers (package authserver) nor its store.
func TestManagerNeverLinksTheServer(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the manager's dependencies")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/mcpauth/mcpauth/"
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == module+"authserver" || strings.HasPrefix(pkg, module+"authserver/store") ||
			strings.HasPrefix(pkg, module+"authserver/upstream") {
			t.Errorf("the manager links %s", pkg)
		}
	}
}

package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImagesAreTheDockerfiles builds the authorization server's image and the pause
// image and reads them back: the user, entrypoint and files the Dockerfile gives
// (distroless nonroot, /manager, /authserver and /mcpauth), and the same digest on a second
// build, so an unchanged tree is never imported again.
func TestImagesAreTheDockerfiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	t.Chdir("../..")
	out := t.TempDir()
	want, err := selectImages([]string{"mcpauth", "pause"})
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(out, "test", ca, want); err != nil {
		t.Fatal(err)
	}
	check := func(file, ref, user string, entrypoint []string, files ...string) string {
		t.Helper()
		tag, _ := name.NewTag(ref)
		img, err := tarball.ImageFromPath(filepath.Join(out, file), &tag)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != user || !slices.Equal(cf.Config.Entrypoint, entrypoint) || cf.OS != "linux" {
			t.Errorf("%s: user %q entrypoint %q os %q; want %q %q linux", ref, cf.Config.User, cf.Config.Entrypoint, cf.OS, user, entrypoint)
		}
		got := map[string]*tar.Header{}
		r := mutate.Extract(img)
		defer r.Close()
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got["/"+strings.TrimSuffix(h.Name, "/")] = h
		}
		for _, f := range files {
			if got[f] == nil {
				t.Errorf("%s: no %s in the image", ref, f)
			}
		}
		d, _ := img.Digest()
		return d.String()
	}
	first := check("mcpauth_dev.tar", "mcpauth:dev", "65532:65532", []string{"/manager"},
		"/manager", "/authserver", "/mcpauth", "/etc/passwd", "/etc/group", "/etc/ssl/certs/ca-certificates.crt", "/tmp", "/home/nonroot")
	check("mcpauth-pause_dev.tar", "mcpauth-pause:dev", "0:0", []string{"/pause"}, "/pause")

	if err := run(out, "test", ca, want[:1]); err != nil {
		t.Fatal(err)
	}
	if again := check("mcpauth_dev.tar", "mcpauth:dev", "65532:65532", []string{"/manager"}); again != first {
		t.Errorf("a second build of the same tree gave another digest: %s, then %s", first, again)
	}
}

func TestSelectImages(t *testing.T) {
	for _, arg := range []string{"mcpauth", "mcpauth:dev", "pause", "mcpauth-pause", "mcpserver", "kubecheck"} {
		if _, err := selectImages([]string{arg}); err != nil {
			t.Errorf("%s: %v", arg, err)
		}
	}
	if _, err := selectImages([]string{"nginx"}); err == nil || !strings.Contains(err.Error(), "no image \"nginx\"") {
		t.Errorf("an unknown image: %v", err)
	}
}

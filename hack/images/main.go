// Command images builds the project's container images without a Docker engine or a
// registry: it compiles the static binaries and wraps them, with the same user,
// entrypoint and files as the Dockerfile's distroless base, into image tarballs that
// `ctr images import` loads into the dev cluster's containerd.
//
//	go run ./hack/images -out bin/images            # every image
//	go run ./hack/images -out bin/images pause      # only the named ones
//
// Images (names as the manifests use them; containerd completes them):
//
//	mcpauth:dev            /manager, /authserver and the admin CLI /mcpauth, entrypoint
//	                       /manager (the Dockerfile)
//	mcpauth-mcpserver:dev  /mcpserver, the example MCP server (examples/mcpserver)
//	mcpauth-pause:dev      the pod sandbox (hack/images/pause)
//	mcpauth-kubecheck:dev  the cluster test's in-pod RBAC check (test/cluster/kubecheck)
//
// Layers are written with fixed timestamps and the binaries are built with -trimpath,
// so the same sources give the same image digests, and a tarball is rewritten only when
// its content changes. It prints one line per image: "name path digest".
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// nonroot is the distroless "nonroot" user the Dockerfile runs as.
const nonroot = 65532

// image is one image: which programs go where, and how it starts.
type image struct {
	name       string
	binaries   map[string]string // path in the image → Go package
	entrypoint []string
	user       string
}

var images = []image{
	{
		name:       "mcpauth:dev",
		binaries:   map[string]string{"/manager": "./cmd/manager", "/authserver": "./cmd/authserver", "/mcpauth": "./cmd/mcpauth"},
		entrypoint: []string{"/manager"},
		user:       "65532:65532",
	},
	{
		name:       "mcpauth-mcpserver:dev",
		binaries:   map[string]string{"/mcpserver": "./examples/mcpserver"},
		entrypoint: []string{"/mcpserver"},
		user:       "65532:65532",
	},
	{
		// The sandbox runs as root, as every pause image does: it only waits.
		name:       "mcpauth-pause:dev",
		binaries:   map[string]string{"/pause": "./hack/images/pause"},
		entrypoint: []string{"/pause"},
		user:       "0:0",
	},
	{
		name:       "mcpauth-kubecheck:dev",
		binaries:   map[string]string{"/kubecheck": "./test/cluster/kubecheck"},
		entrypoint: []string{"/kubecheck"},
		user:       "65532:65532",
	},
}

func main() {
	out := flag.String("out", "bin/images", "directory for the image tarballs and the binaries")
	version := flag.String("version", "dev", "stamped into the binaries (main.version), as the Dockerfile's VERSION")
	caFile := flag.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt",
		"the CA bundle to put at /etc/ssl/certs/ca-certificates.crt, as distroless has it (empty: none)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: images [-out DIR] [IMAGE...]\nimages: %s\n", strings.Join(names(), ", "))
		flag.PrintDefaults()
	}
	flag.Parse()
	want, err := selectImages(flag.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "images: %v\n", err)
		os.Exit(2)
	}
	if err := run(*out, *version, *caFile, want); err != nil {
		fmt.Fprintf(os.Stderr, "images: %v\n", err)
		os.Exit(1)
	}
}

func names() []string {
	var n []string
	for _, im := range images {
		n = append(n, im.name)
	}
	return n
}

// selectImages maps arguments ("mcpauth", "mcpauth:dev", "pause") to images.
func selectImages(args []string) ([]image, error) {
	if len(args) == 0 {
		return images, nil
	}
	var out []image
	for _, a := range args {
		i := slices.IndexFunc(images, func(im image) bool {
			base := strings.SplitN(im.name, ":", 2)[0]
			return a == im.name || a == base || "mcpauth-"+a == base
		})
		if i < 0 {
			return nil, fmt.Errorf("no image %q (have %s)", a, strings.Join(names(), ", "))
		}
		out = append(out, images[i])
	}
	return out, nil
}

func run(out, version, caFile string, want []image) error {
	if err := os.MkdirAll(filepath.Join(out, "bin"), 0o755); err != nil {
		return err
	}
	var ca []byte
	if caFile != "" {
		var err error
		if ca, err = os.ReadFile(caFile); err != nil {
			return fmt.Errorf("the CA bundle (install ca-certificates, or -ca-certificates ''): %w", err)
		}
	}
	base, err := baseLayer(ca)
	if err != nil {
		return err
	}
	for _, im := range want {
		files := map[string][]byte{}
		for path, pkg := range im.binaries {
			bin := filepath.Join(out, "bin", strings.TrimPrefix(path, "/"))
			if err := build(pkg, bin, version); err != nil {
				return err
			}
			b, err := os.ReadFile(bin)
			if err != nil {
				return err
			}
			files[path] = b
		}
		digest, path, err := write(out, im, base, files)
		if err != nil {
			return fmt.Errorf("%s: %w", im.name, err)
		}
		fmt.Printf("%s %s %s\n", im.name, path, digest)
	}
	return nil
}

// build compiles a static binary the way the Dockerfile does.
func build(pkg, out, version string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version, "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w", pkg, err)
	}
	return nil
}

// entry is one file or directory of a layer.
type entry struct {
	path string
	mode int64
	uid  int
	data []byte
	dir  bool
}

// baseLayer is what the Dockerfile's distroless static base gives the binaries: the
// users (root, nobody, nonroot), a CA bundle, /tmp, and nonroot's home.
func baseLayer(ca []byte) (v1.Layer, error) {
	es := []entry{
		{path: "etc", mode: 0o755, dir: true},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{path: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "home", mode: 0o755, dir: true},
		{path: "home/nonroot", mode: 0o700, uid: nonroot, dir: true},
		{path: "root", mode: 0o700, dir: true},
		{path: "tmp", mode: 0o1777, dir: true},
	}
	if ca != nil {
		es = append(es,
			entry{path: "etc/ssl", mode: 0o755, dir: true},
			entry{path: "etc/ssl/certs", mode: 0o755, dir: true},
			entry{path: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca})
	}
	return layer(es)
}

// layer makes an uncompressed-in-memory tar layer with fixed timestamps.
func layer(es []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, e := range es {
		h := &tar.Header{Name: e.path, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: epoch, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, e.path+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// write assembles the image and writes its tarball unless an identical one is there.
func write(out string, im image, base v1.Layer, files map[string][]byte) (v1.Hash, string, error) {
	var es []entry
	for _, p := range slices.Sorted(maps.Keys(files)) {
		es = append(es, entry{path: strings.TrimPrefix(p, "/"), mode: 0o755, data: files[p]})
	}
	app, err := layer(es)
	if err != nil {
		return v1.Hash{}, "", err
	}
	img, err := mutate.AppendLayers(empty.Image, base, app)
	if err != nil {
		return v1.Hash{}, "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.User = im.user
	cf.Config.Entrypoint = im.entrypoint
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	if im.user != "0:0" {
		cf.Config.WorkingDir = "/home/nonroot"
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return v1.Hash{}, "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, "", err
	}
	tag, err := name.NewTag(im.name)
	if err != nil {
		return v1.Hash{}, "", err
	}
	path := filepath.Join(out, strings.NewReplacer(":", "_", "/", "_").Replace(im.name)+".tar")
	stamp := path + ".digest"
	if old, err := os.ReadFile(stamp); err == nil && string(old) == digest.String() {
		if _, err := os.Stat(path); err == nil {
			return digest, path, nil
		}
	}
	if err := tarball.WriteToFile(path+".tmp", tag, img); err != nil {
		return v1.Hash{}, "", err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return v1.Hash{}, "", err
	}
	return digest, path, os.WriteFile(stamp, []byte(digest.String()), 0o644)
}

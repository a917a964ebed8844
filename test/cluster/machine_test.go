//go:build linux

package cluster

import (
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Paths the cluster scripts own (hack/cluster/lib.sh), and places a kubelet or
// containerd would write to by default; none may outlive a cluster-down.
const (
	stateDir   = "/var/lib/mcpauth-cluster"
	runDir     = "/run/mcpauth-cluster"
	bridgeName = "mcpauth0"
	bridgeIP   = "10.88.0.1"
	cgroupRoot = "mcpauth-cluster"
)

var defaultPaths = []string{
	stateDir, runDir, "/var/lib/cni", "/run/netns", "/var/log/containers", "/var/log/pods",
	"/etc/cni", "/opt/cni", "/var/lib/kubelet", "/var/lib/containerd", "/run/containerd",
}

var sysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	"net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/all/route_localnet",
	"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
	"net/netfilter/nf_conntrack_max",
}

// machine is what a cluster-up changes and a cluster-down must put back: each entry
// is a set of lines, compared as sets.
type machine map[string][]string

var iptablesCounters = regexp.MustCompile(`\[\d+:\d+\]`)

// snapshot reads the machine's state: mounts, network interfaces, iptables rules and
// chains (IPv4 and IPv6), network namespaces, sysctls, the cluster's cgroups and
// paths, and the processes that belong to a cluster (by their command line naming the
// cluster's directories or socket, or by living in its cgroups).
func snapshot(t *testing.T) machine {
	t.Helper()
	m := machine{}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 {
			continue
		}
		sep := slices.Index(f, "-")
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		// mount point, file system type, source: IDs differ between equal mounts.
		m["mounts"] = append(m["mounts"], f[4]+" "+f[sep+1]+" "+f[sep+2])
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		m["links"] = append(m["links"], i.Name)
	}
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(save).Output()
		if err != nil {
			t.Fatalf("%s: %v", save, err)
		}
		table := ""
		for _, l := range strings.Split(string(out), "\n") {
			switch {
			case strings.HasPrefix(l, "#") || l == "" || l == "COMMIT":
			case strings.HasPrefix(l, "*"):
				table = l[1:]
			default:
				m[save] = append(m[save], table+" "+iptablesCounters.ReplaceAllString(l, ""))
			}
		}
	}
	if out, err := exec.Command("nft", "list", "tables").Output(); err == nil {
		m["nft tables"] = strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), "table ", "table:"))
	}
	if es, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range es {
			m["netns"] = append(m["netns"], e.Name())
		}
	}
	for _, s := range sysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", s))
		if err == nil {
			m["sysctls"] = append(m["sysctls"], s+"="+strings.TrimSpace(string(b)))
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupRoot)
	if c, err := os.Stat("/sys/fs/cgroup/" + cgroupRoot); err == nil && c.IsDir() {
		cgs = append(cgs, "/sys/fs/cgroup/"+cgroupRoot)
	}
	m["cgroups"] = cgs
	for _, p := range defaultPaths {
		if _, err := os.Lstat(p); err == nil {
			m["paths"] = append(m["paths"], p)
		}
	}
	m["processes"] = clusterProcesses()
	for k := range m {
		slices.Sort(m[k])
	}
	return m
}

// clusterProcesses lists the processes that belong to a dev cluster.
func clusterProcesses() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmd, err := os.ReadFile(p + "/cmdline")
		if err != nil || len(cmd) == 0 {
			continue
		}
		line := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		cg, _ := os.ReadFile(p + "/cgroup")
		if strings.Contains(line, stateDir) || strings.Contains(line, runDir) ||
			strings.Contains(line, "/cluster/v1.") || strings.Contains(string(cg), "/"+cgroupRoot+"/") {
			out = append(out, fmt.Sprintf("%s %s", filepath.Base(p), line))
		}
	}
	return out
}

// diff describes what differs between two snapshots, one line per difference.
func (a machine) diff(b machine) []string {
	var out []string
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		for _, l := range b[k] {
			if !slices.Contains(a[k], l) {
				out = append(out, fmt.Sprintf("%s: added %q", k, l))
			}
		}
		for _, l := range a[k] {
			if !slices.Contains(b[k], l) {
				out = append(out, fmt.Sprintf("%s: removed %q", k, l))
			}
		}
	}
	return out
}

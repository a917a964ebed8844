package config

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestEveryFieldIsDocumented keeps docs/configuration.md in step with the types: each
// leaf field must appear there by its full path, in backquotes.
func TestEveryFieldIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	paths := leafPaths(reflect.TypeFor[Config](), "")
	if len(paths) < 40 {
		t.Fatalf("found only %d fields; the walk is broken", len(paths))
	}
	for _, p := range paths {
		if !strings.Contains(string(doc), "`"+p+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", p)
		}
	}
	for _, env := range []string{EnvAuthCodeTTL, EnvAccessTokenTTL, EnvRefreshTokenTTL, EnvClientRegistrationTTL,
		EnvExternalTokenTTL, EnvSessionProvider, EnvSessionRedisURL, EnvUpstreamClientSecret, EnvRedisPassword, EnvEncryptionKey} {
		if !strings.Contains(string(doc), "`"+env+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", env)
		}
	}
}

// leafPaths lists the YAML paths of t's leaf fields; list elements appear as "[]".
func leafPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct {
		return leafPaths(t.Elem(), prefix+"[]")
	}
	if t.Kind() != reflect.Struct || t == durationType {
		return []string{prefix}
	}
	var out []string
	for name, f := range jsonFields(t) {
		out = append(out, leafPaths(f.Type, joinPath(prefix, name))...)
	}
	return out
}

// TestImportsStayLight guards the package's promise to the operator: it imports the
// standard library and sigs.k8s.io/yaml, nothing of the server.
func TestImportsStayLight(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if strings.Contains(first, ".") && p != "sigs.k8s.io/yaml" {
				t.Errorf("%s imports %s; config may import only the standard library and sigs.k8s.io/yaml", name, p)
			}
		}
	}
}

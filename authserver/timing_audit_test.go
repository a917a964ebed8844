package authserver

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsAreComparedInConstantTime is an audit that keeps itself up to date: it
// parses every non-test Go file of the authorization server (this package and all
// below it) and fails on an == or != comparison, or a bytes.Equal, strings.Compare or
// strings.EqualFold call, whose operand is named like a secret (a token, a secret, a
// hash, a verifier, a MAC...), unless the other side is a literal such as "" or nil.
// Such comparisons stop at the first differing byte, and their timing tells an
// attacker how much of a guess was right: OAuth 2.1 §7.7 (credentials-guessing
// attacks) wants secrets that cannot be guessed, and a timing oracle lets them be
// guessed byte by byte.
// Secrets are compared with crypto/subtle or crypto/hmac.Equal (equalHash,
// pkceMatches, verifySecret, verifyCSRF, the OIDC nonce, adminAuth).
//
// Lookups are not comparisons: the store finds records by the HMAC of a token, and the
// resource package's cache by its SHA-256, so their timing depends on a value the
// attacker cannot steer byte by byte.
func TestSecretsAreComparedInConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	var findings []string
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		for _, decl := range f.Decls {
			fn := "" // the enclosing function, "(*T).m" or "f"; "" at package level
			if fd, ok := decl.(*ast.FuncDecl); ok {
				fn = funcName(fd)
			}
			ast.Inspect(decl, func(n ast.Node) bool {
				var operands []ast.Expr
				switch n := n.(type) {
				case *ast.BinaryExpr:
					if n.Op != token.EQL && n.Op != token.NEQ || isLiteral(n.X) || isLiteral(n.Y) {
						return true
					}
					operands = []ast.Expr{n.X, n.Y}
				case *ast.CallExpr:
					if name := calleeName(n.Fun); name == "bytes.Equal" || name == "strings.Compare" || name == "strings.EqualFold" {
						operands = n.Args
					}
				}
				for _, op := range operands {
					name, ok := secretName(op)
					if ok && !auditAllowed[filepath.ToSlash(path)+" "+fn+" "+name] {
						findings = append(findings, fset.Position(n.Pos()).String()+": "+fn+" compares "+name+" in variable time")
						break
					}
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("audited only %d files; the walk missed the packages", files)
	}
	for _, f := range findings {
		t.Error(f)
	}
}

// auditAllowed are reviewed comparisons, by file, enclosing function and operand name,
// with the reason.
var auditAllowed = map[string]bool{
	// An upstream OAuth error code ("access_denied"), not an authorization code.
	"callback.go upstreamError code": true,
	// A configuration file's field name.
	"config/parse.go checkTree key": true,
	// Both sides come from the same token request (the form value read twice), so the
	// time says nothing about anything the server holds.
	"token.go (*tokenReads).code secret":         true,
	"token.go (*tokenReads).refreshToken secret": true,
	// A key ID is published in the JWKS and in every token's header.
	"jwt.go (*SigningKeys).published KeyID": true,
	// A jti is in every JWT a resource server sees, and in the public revocation feed.
	"store/storetest/storetest.go inFeed TokenID": true,
}

// secretWords mark a name as holding a secret; harmlessWords, found in the same name,
// clear it (a token's type or endpoint is no secret).
var (
	secretWords   = []string{"secret", "token", "verifier", "challenge", "hash", "csrf", "mac", "sig", "password", "nonce", "cookie", "binding", "key", "code", "state"}
	harmlessWords = []string{"method", "type", "kind", "endpoint", "url", "path", "ttl", "len", "prefix", "status", "name", "hint", "count", "err", "statuscode", "errcode", "response", "grant", "format"}
)

// secretName returns the name an operand is known by, and whether it sounds secret.
func secretName(e ast.Expr) (string, bool) {
	var name string
	switch e := e.(type) {
	case *ast.Ident:
		name = e.Name
	case *ast.SelectorExpr:
		name = e.Sel.Name
	case *ast.IndexExpr:
		return secretName(e.X)
	default:
		return "", false
	}
	lower := strings.ToLower(name)
	for _, h := range harmlessWords {
		if strings.Contains(lower, h) {
			return name, false
		}
	}
	for _, w := range secretWords {
		if strings.Contains(lower, w) {
			return name, true
		}
	}
	return name, false
}

// funcName is "f" for a function and "(*T).m" or "(T).m" for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	switch t := fd.Recv.List[0].Type.(type) {
	case *ast.StarExpr:
		if id, ok := t.X.(*ast.Ident); ok {
			return "(*" + id.Name + ")." + fd.Name.Name
		}
	case *ast.Ident:
		return "(" + t.Name + ")." + fd.Name.Name
	}
	return fd.Name.Name
}

func isLiteral(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return e.Name == "nil" || e.Name == "true" || e.Name == "false"
	}
	return false
}

func calleeName(e ast.Expr) string {
	if s, ok := e.(*ast.SelectorExpr); ok {
		if x, ok := s.X.(*ast.Ident); ok {
			return x.Name + "." + s.Sel.Name
		}
	}
	return ""
}

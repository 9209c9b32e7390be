// Package internal_test holds the house rules of the module's layering,
// checked with `go list` so that an import that breaks them fails here:
//
//   - the leaves (reconcile, config, credential) import nothing of the
//     project;
//   - no backend depends on another (the secrets packages are one backend);
//   - no production package depends on the test environment;
//   - only cmd wires the backends together.
package internal_test

import (
	"bufio"
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/health-data-ai/bootstrap/"

// backend names the backend a package belongs to, or "".
func backend(pkg string) string {
	for _, b := range []string{"internal/amqp", "internal/buckets", "internal/initdb/postgres", "internal/initdb/redis", "internal/secrets"} {
		if pkg == b || strings.HasPrefix(pkg, b+"/") {
			return b
		}
	}
	return ""
}

// testSupport says whether a package exists for tests only (suites, fakes,
// the test environment): it may use what production packages may not.
func testSupport(pkg string) bool {
	last := pkg[strings.LastIndex(pkg, "/")+1:]
	return strings.HasSuffix(last, "test") || pkg == "internal/testenv" || strings.HasPrefix(pkg, "internal/testenv/") || pkg == "e2e" || pkg == "charts"
}

type pkgInfo struct {
	imports, deps []string // of this module, without the module prefix
}

func listPackages(t *testing.T) map[string]pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", "../...")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, errb.String())
	}
	ours := func(s string) []string {
		var r []string
		for _, f := range strings.Fields(s) {
			if strings.HasPrefix(f, module) {
				r = append(r, strings.TrimPrefix(f, module))
			}
		}
		return r
	}
	pkgs := map[string]pkgInfo{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), "|", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[0], module) {
			continue
		}
		pkgs[strings.TrimPrefix(parts[0], module)] = pkgInfo{imports: ours(parts[1]), deps: ours(parts[2])}
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	return pkgs
}

func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	for _, leaf := range []string{"internal/reconcile", "internal/config", "internal/credential"} {
		if _, ok := pkgs[leaf]; !ok {
			t.Errorf("no package %s", leaf)
			continue
		}
		if d := pkgs[leaf].deps; len(d) > 0 {
			t.Errorf("%s is a leaf but depends on %v", leaf, d)
		}
	}
	var backends int
	for pkg, info := range pkgs {
		if b := backend(pkg); b != "" {
			backends++
			for _, d := range info.deps {
				if ob := backend(d); ob != "" && ob != b {
					t.Errorf("backend %s depends on backend %s (through %s)", pkg, ob, d)
				}
			}
		}
		if testSupport(pkg) {
			continue
		}
		for _, d := range info.deps {
			if d == "internal/testenv" || strings.HasPrefix(d, "internal/testenv/") {
				t.Errorf("production package %s depends on the test environment (%s)", pkg, d)
			}
		}
		if strings.HasPrefix(pkg, "cmd/") {
			continue
		}
		for _, imp := range info.imports {
			if ob := backend(imp); ob != "" && ob != backend(pkg) {
				t.Errorf("%s imports backend %s: only cmd wires the backends", pkg, imp)
			}
		}
	}
	if backends < 5 {
		t.Errorf("found %d backend packages; the rules above check nothing", backends)
	}
}

// TestSizes: no non-test Go file of the module passes 600 lines and no
// function 100, so that each file does one thing and each function one step.
func TestSizes(t *testing.T) {
	const maxFile, maxFunc = 600, 100
	fset := token.NewFileSet()
	var files int
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		if n := fset.Position(f.FileEnd).Line; n > maxFile {
			t.Errorf("%s: %d lines (at most %d)", path, n, maxFile)
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok {
				if n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1; n > maxFunc {
					t.Errorf("%s: func %s is %d lines (at most %d)", path, fn.Name.Name, n, maxFunc)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d Go files: the walk missed the module", files)
	}
}

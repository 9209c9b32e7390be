package main

import (
	"context"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// CLI behaviour as scripts (testdata/script/*.txtar): exit codes, stdout and
// stderr lines, as a user sees them.
func TestMain(m *testing.M) {
	testscript.Main(leakScanned{m}, map[string]func(){
		"bootstrap": func() { os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}

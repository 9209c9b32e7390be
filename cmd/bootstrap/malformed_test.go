package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// problemLine is "path: reason" (a field path, "line N", or a flag).
var problemLine = regexp.MustCompile(`^(([A-Za-z0-9_.\[\]/-]|\["[^"]*"\])+|line \d+): \S`)

// TestMalformedCorpus: every config in testdata/malformed (mutations of
// examples/platform.yaml, plus fuzzer finds) exits 2 from validate and from
// apply, lists at least one problem with its path, touches nothing (no
// network: none of these hosts resolve) and never panics or echoes an
// inline credential.
func TestMalformedCorpus(t *testing.T) {
	files, _ := filepath.Glob("testdata/malformed/*.yaml")
	if len(files) < 50 {
		t.Fatalf("corpus has %d configs, want at least 50", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			for _, cmd := range []string{"validate", "apply"} {
				var stdout, stderr bytes.Buffer
				code := run(context.Background(), []string{cmd, "-f", f}, &stdout, &stderr)
				if code != 2 {
					t.Fatalf("%s exited %d, want 2\nstdout: %s\nstderr: %s", cmd, code, stdout.String(), stderr.String())
				}
				lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
				if len(lines) < 2 || !strings.HasPrefix(lines[0], "error: ") {
					t.Fatalf("%s: want a header and problem lines, got:\n%s", cmd, stderr.String())
				}
				for _, l := range lines[1:] {
					if !problemLine.MatchString(l) {
						t.Errorf("%s: line without a path: %q", cmd, l)
					}
				}
				for _, leaked := range []string{"s3cr3t-inline", "inline-pw"} {
					if strings.Contains(stderr.String()+stdout.String(), leaked) {
						t.Errorf("%s echoed an inline credential", cmd)
					}
				}
				if stdout.Len() != 0 {
					t.Errorf("%s wrote a report for invalid input: %s", cmd, stdout.String())
				}
			}
		})
	}
	if _, err := os.Stat("sealed"); err == nil {
		t.Error("an invalid config wrote output")
	}
}

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

func TestRunFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--nope"}, exitInvalid, "flag provided but not defined: -nope"},
		{[]string{"extra"}, exitInvalid, `unexpected argument "extra"`},
		{[]string{"--platforms", "linux/amd64,"}, exitInvalid, "--platforms"},
		{[]string{"--binary", "linux/amd64"}, exitInvalid, "want PLATFORM=PATH"},
		{[]string{"--name", "Bootstrap:x"}, exitInvalid, "--name"},
		{[]string{"--dockerfile", "/nonexistent/Dockerfile"}, exitFailed, "/nonexistent/Dockerfile"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code || !strings.Contains(stderr.String(), "error: ") || !strings.Contains(stderr.String(), tt.err) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and an error with %q", tt.args, code, stderr.String(), tt.code, tt.err)
		}
	}
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stdout, &bytes.Buffer{}); code != exitOK || !strings.Contains(stdout.String(), "--base BASE") {
		t.Errorf("-h: exit %d, %q", code, stdout.String())
	}
}

// TestRun drives the command end to end with prebuilt "binaries" (any
// file will do for the plumbing; internal/image's tests compile and run
// the real ones): the same inputs twice print the same digest and write
// the same tarball.
func TestRun(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.WriteFile(bin, []byte("not really a binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var digests, tars []string
	for i := range 2 {
		out := filepath.Join(dir, "layout")
		tarPath := filepath.Join(dir, "image.tar")
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{
			"--dockerfile", "../../Dockerfile", "--dir", "../..", "--version", "v9.9.9",
			"--binary", "linux/amd64=" + bin, "--binary", "linux/arm64=" + bin,
			"--out", out, "--tar", tarPath,
		}, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("run %d: exit %d\n%s", i, code, stderr.String())
		}
		m := regexp.MustCompile(`^docker\.io/library/bootstrap:v9\.9\.9 (sha256:[0-9a-f]{64})\n`).FindStringSubmatch(stdout.String())
		if m == nil {
			t.Fatalf("run %d: stdout %q", i, stdout.String())
		}
		for _, want := range []string{"linux/amd64 ", "linux/arm64/v8 ", "layout " + out + ", tarball " + tarPath} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("run %d: stdout lacks %q:\n%s", i, want, stdout.String())
			}
		}
		if !strings.Contains(stderr.String(), "epoch_from=SOURCE_DATE_EPOCH") {
			t.Errorf("run %d: stderr %q", i, stderr.String())
		}
		b, err := os.ReadFile(tarPath)
		if err != nil {
			t.Fatal(err)
		}
		digests, tars = append(digests, m[1]), append(tars, string(b))
	}
	if digests[0] != digests[1] || tars[0] != tars[1] {
		t.Errorf("two runs differ: %s, %s (tarballs equal: %t)", digests[0], digests[1], tars[0] == tars[1])
	}
}

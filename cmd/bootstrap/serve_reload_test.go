package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeHostileReload: a config file replaced by an alias bomb while
// serve runs makes /readyz 503 naming the failed reload, within an
// interval, while /healthz stays 200; restoring the file makes it ready.
func TestServeHostileReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bootstrap.yaml")
	good := "version: 1\n"
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	ctx, stop := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-f", file, "--interval", "1s", "--listen", addr}, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d", code)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	eventually(t, 10*time.Second, "/readyz is 200", func() bool { c, _ := get(base + "/readyz"); return c == 200 })

	bomb := "version: 1\npostgres:\n  - &p {name: h, host: db, admin: {password: {secret: a}}, databases: [&d {name: d, schemas: [&s {name: s}" +
		strings.Repeat(", *s", 199) + "]}" + strings.Repeat(", *d", 199) + "]}\n" + strings.Repeat("  - *p\n", 199)
	if err := os.WriteFile(file, []byte(bomb), 0o644); err != nil {
		t.Fatal(err)
	}
	var body string
	eventually(t, 5*time.Second, "/readyz 503 naming the reload", func() bool {
		var c int
		c, body = get(base + "/readyz")
		return c == 503 && strings.Contains(body, "config reload failed") && strings.Contains(body, "postgres[0].databases[")
	})
	if c, _ := get(base + "/healthz"); c != 200 {
		t.Errorf("/healthz = %d during a failed reload", c)
	}
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "/readyz 200 again", func() bool { c, _ := get(base + "/readyz"); return c == 200 })
	t.Logf("readyz during the bomb: %s", body)
}

// TestServeOnlyNeverWidens: serve --only redis/a, then a config without
// redis/a: the reload is refused (last good config kept, /readyz names
// --only) and redis/b is never touched — before, serve reconciled every
// target of the new file.
func TestServeOnlyNeverWidens(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bootstrap.yaml")
	// Nothing listens on port 1: each run fails fast, and the log names
	// every target it tried.
	entry := func(name string) string { return "  - {name: " + name + ", address: \"127.0.0.1:1\"}\n" }
	head := "version: 1\ndefaults: {waitTimeout: 1s}\nredis:\n"
	if err := os.WriteFile(file, []byte(head+entry("a")+entry("b")), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	ctx, stop := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-f", file, "--only", "redis/a", "--interval", "1s", "--listen", addr}, &stdout, &stderr)
	}()
	defer func() {
		stop()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	eventually(t, 10*time.Second, "a run of redis/a", func() bool { return strings.Contains(stderr.String(), "target=redis/a") })
	if err := os.WriteFile(file, []byte(head+entry("b")), 0o644); err != nil {
		t.Fatal(err)
	}
	var body string
	eventually(t, 10*time.Second, "/readyz 503 naming --only", func() bool {
		var c int
		c, body = get(base + "/readyz")
		return c == 503 && strings.Contains(body, "config reload failed") && strings.Contains(body, "--only")
	})
	// Two more intervals: time for a widened run to show.
	time.Sleep(2500 * time.Millisecond)
	if strings.Contains(stderr.String(), "target=redis/b") {
		t.Errorf("serve --only redis/a touched redis/b after the reload:\n%s", stderr.String())
	}
	t.Logf("readyz: %s", body)
}

// Command probe is the workload of the node smoke test (internal/testenv/node).
// It prints the pod's addresses; then, when told to, asks a test-environment
// server for an answer and calls the kube-apiserver with the pod's projected
// ServiceAccount token, verified against kube-root-ca.crt:
//
//	PROBE_TCP     host:port of a Redis server (a PING is sent, the reply printed)
//	PROBE_API     https://host:port of the kube-apiserver
//	PROBE_SA_DIR  where the ServiceAccount token and ca.crt are mounted
//
// It prints "probe ok: ..." lines and exits 0, or says what failed and exits 1.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "probe: "+err.Error())
		os.Exit(1)
	}
}

func run() error {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("addresses: %w", err)
	}
	fmt.Printf("probe ok: addresses %v\n", addrs)
	addr := os.Getenv("PROBE_TCP")
	if addr == "" {
		return nil
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return fmt.Errorf("write %s: %w", addr, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read %s: %w", addr, err)
	}
	fmt.Printf("probe ok: %s answered %q\n", addr, strings.TrimSpace(line))

	dir := os.Getenv("PROBE_SA_DIR")
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return fmt.Errorf("service account token: %w", err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return fmt.Errorf("service account ca.crt: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("no certificate in %s/ca.crt", dir)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest(http.MethodGet, os.Getenv("PROBE_API")+"/version", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	defer resp.Body.Close()
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kube-apiserver /version: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return fmt.Errorf("kube-apiserver /version: %w", err)
	}
	fmt.Printf("probe ok: kube-apiserver %s with the pod's token\n", v.GitVersion)
	return nil
}

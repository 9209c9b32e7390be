package daemon

import (
	"context"
	"fmt"
	"time"
)

// DefaultReloadTimeout bounds a config reload when ReloadTimeout is zero.
// Loading a config takes milliseconds; a reload still running after this
// long is stuck (a hung volume, a hostile file) and is reported instead of
// holding up the loop.
const DefaultReloadTimeout = 30 * time.Second

// reloadFailure is why the config could not be reloaded, for /readyz.
type reloadFailure struct {
	reason string // "config reload failed", "config reload timed out after 30s", …
	err    string // what Reload returned, when it returned
}

// reload runs Reload bounded by the timeout, puts a good result in use and
// records the outcome. A previous reload still running (abandoned at its
// timeout) is waited for within this one's timeout, never run beside.
func (d *Daemon) reload(ctx context.Context) {
	timeout := d.ReloadTimeout
	if timeout <= 0 {
		timeout = DefaultReloadTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if d.reloading != nil {
		select {
		case <-d.reloading:
		case <-rctx.Done():
			if ctx.Err() == nil {
				d.reloaded("timeout", &reloadFailure{reason: "config reload timed out: the one before is still running; keeping the last good config"})
			}
			return
		}
	}
	type result struct {
		use func()
		err error
	}
	done := make(chan result, 1)
	finished := make(chan struct{})
	d.reloading = finished
	go func() {
		defer close(finished)
		use, err := d.Reload(rctx)
		done <- result{use, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			d.reloaded("failed", &reloadFailure{reason: "config reload failed; keeping the last good config", err: r.err.Error()})
			return
		}
		if r.use != nil {
			r.use()
		}
		d.reloaded("ok", nil)
	case <-rctx.Done():
		if ctx.Err() == nil {
			d.reloaded("timeout", &reloadFailure{reason: fmt.Sprintf("config reload timed out after %s; keeping the last good config", timeout)})
		}
	}
}

// reloaded counts a reload, logs a failure and keeps it for /readyz.
func (d *Daemon) reloaded(result string, bad *reloadFailure) {
	d.m.reloads.WithLabelValues(result).Inc()
	switch {
	case bad != nil && bad.err != "":
		d.Logger.Error(bad.reason, "error", bad.err)
	case bad != nil:
		d.Logger.Error(bad.reason)
	}
	d.mu.Lock()
	d.reloadBad = bad
	d.mu.Unlock()
}

package amqp

import (
	"context"
	"fmt"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// Plan reads the broker state and returns one change per desired
// resource, in dependency order: vhosts, users, permissions, topic
// permissions, policies, exchanges, queues, bindings.
func (t *Target) Plan(ctx context.Context) ([]reconcile.Change, error) {
	s, err := t.read(ctx)
	if err != nil {
		return nil, err
	}
	// The admin's new password first: every later request uses it.
	out := t.planAdminPassword()
	for _, v := range t.cfg.VHosts {
		out = append(out, t.planVHost(s, v))
	}
	// A declared user is one broker user, or two (three) when it rotates
	// (users.go); each gets the declared tags and permissions.
	logins := make([][]login, len(t.cfg.Users))
	for i, u := range t.cfg.Users {
		ls, err := t.logins(s, u)
		if err != nil {
			return nil, err
		}
		logins[i] = ls
		for _, l := range ls {
			out = append(out, t.planLogin(s, u, l))
		}
	}
	for i, u := range t.cfg.Users {
		for _, l := range logins[i] {
			for _, p := range u.Permissions {
				out = append(out, t.planPermission(s, l.name, p))
			}
		}
	}
	for i, u := range t.cfg.Users {
		for _, l := range logins[i] {
			for _, p := range u.TopicPermissions {
				out = append(out, t.planTopicPermission(s, l.name, p))
			}
		}
	}
	for _, p := range t.cfg.Policies {
		out = append(out, t.planPolicy(s, p))
	}
	// Exchanges, queues and bindings are declared in batches (the first
	// change of a kind in a vhost declares all of them) and each change
	// reports its own object's result. So each is a failure group of its
	// own: a failed queue does not mark the others skipped when the batch
	// already declared them, and a binding to it fails on its own, naming
	// the missing queue.
	d := newDeclarer(t)
	topology := len(out)
	for _, x := range t.cfg.Exchanges {
		out = append(out, t.planExchange(s, d, x))
	}
	for _, q := range t.cfg.Queues {
		out = append(out, t.planQueue(s, d, q))
	}
	for _, b := range t.cfg.Bindings {
		out = append(out, t.planBinding(s, d, b))
	}
	for i := topology; i < len(out); i++ {
		out[i].Group = out[i].Resource
	}
	return out, nil
}

// upsert is the change for an object that one PUT both creates and
// updates: whether it exists and what differs pick the action and the
// detail, and an object that already matches gets no Apply, so planning
// again after apply is empty.
func upsert(resource string, exists bool, createDetail string, diffs []string, apply func(context.Context) error) reconcile.Change {
	c := reconcile.Change{Resource: resource}
	switch {
	case !exists:
		c.Action = reconcile.Create
		c.Detail = createDetail
	case len(diffs) == 0:
		c.Action = reconcile.Noop
		return c
	default:
		c.Action = reconcile.Update
		c.Detail = strings.Join(diffs, ", ")
	}
	c.Apply = apply
	return c
}

func appendDiff(diffs []string, what, have, want string) []string {
	if have != want {
		diffs = append(diffs, fmt.Sprintf("%s %q -> %q", what, have, want))
	}
	return diffs
}

package amqp

// Vhosts, users, permissions, topic permissions and policies live only in
// the management API, which sets each whole with one PUT: creating and
// updating are the same request, so these planners (and the users' in
// users.go) go through upsert.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// --- vhosts ---

type vhostBody struct {
	Description string `json:"description"`
	Tags        string `json:"tags"`
	// RabbitMQ 3.10-3.12 read "defaultqueuetype" (what the management UI
	// sends); later versions also read "default_queue_type". Unknown keys
	// are ignored, so both are sent.
	DQT1 string `json:"defaultqueuetype,omitempty"`
	DQT2 string `json:"default_queue_type,omitempty"`
}

func (t *Target) planVHost(s *state, v config.RMQVHost) reconcile.Change {
	resource := reconcile.Resource(t.name, "vhost", v.Name)
	want := cleanTags(v.Tags)
	body := vhostBody{Description: v.Description, Tags: strings.Join(want, ","), DQT1: v.DefaultQueueType, DQT2: v.DefaultQueueType}
	noDQT := fmt.Sprintf("RabbitMQ %s has no per-vhost default queue type: set type: %s on each queue (bootstrap already does so for the queues it declares) or upgrade RabbitMQ",
		s.version, v.DefaultQueueType)
	cur, exists := s.vhosts[v.Name]
	if !exists {
		return upsert(resource, false, vhostDetail(v), nil, t.createVHost(v, body, s.dqtSupported, noDQT))
	}
	diffs, drift := vhostDiffs(s, v, cur, want, noDQT)
	if drift != "" {
		// A drift change has no Apply, so the other differences are named
		// here or the user would learn of them only on the next run.
		c := reconcile.Change{Resource: resource, Action: reconcile.Update, Drift: drift}
		if len(diffs) > 0 {
			c.Drift += " (also differs, left as is until then: " + strings.Join(diffs, ", ") + ")"
		}
		return c
	}
	return upsert(resource, true, "", diffs, t.updateVHost(v, body, cur))
}

// vhostDiffs lists what an update would change, and returns as drift a
// default queue type this server cannot set.
func vhostDiffs(s *state, v config.RMQVHost, cur defVHost, want []string, noDQT string) (diffs []string, drift string) {
	if d := vhostDescription(cur); d != v.Description {
		diffs = append(diffs, fmt.Sprintf("description %q -> %q", d, v.Description))
	}
	if have := vhostTags(cur); !slices.Equal(have, want) {
		diffs = append(diffs, fmt.Sprintf("tags %s -> %s", showTags(have), showTags(want)))
	}
	if v.DefaultQueueType == "" {
		return diffs, ""
	}
	have := vhostDQT(cur)
	switch {
	case !s.dqtSupported:
		drift = fmt.Sprintf("vhost %s: defaultQueueType %s cannot be set: %s", v.Name, v.DefaultQueueType, noDQT)
	case have != v.DefaultQueueType && !versionAtLeast(s.version, 3, 11):
		drift = fmt.Sprintf("vhost %s: defaultQueueType is %s on the server, %s in the config; RabbitMQ %s sets it only when the vhost is created: upgrade RabbitMQ to 3.11 or later and re-run, or set type: %s on each queue",
			v.Name, orUnset(have), v.DefaultQueueType, s.version, v.DefaultQueueType)
	case have != v.DefaultQueueType:
		diffs = append(diffs, fmt.Sprintf("defaultQueueType %s -> %s", orUnset(have), v.DefaultQueueType))
	}
	return diffs, drift
}

// createVHost creates the vhost even when the server cannot give it its
// default queue type, then fails so the report says so: the vhost is
// still needed for everything else in it.
func (t *Target) createVHost(v config.RMQVHost, body vhostBody, dqtSupported bool, noDQT string) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := t.putVHost(ctx, v.Name, body); err != nil {
			return err
		}
		if v.DefaultQueueType != "" && !dqtSupported {
			return fmt.Errorf("vhost %s created without default queue type %s: %s", v.Name, v.DefaultQueueType, noDQT)
		}
		return nil
	}
}

func (t *Target) updateVHost(v config.RMQVHost, body vhostBody, cur defVHost) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := t.putVHost(ctx, v.Name, body); err != nil {
			return err
		}
		if v.DefaultQueueType == "" || vhostDQT(cur) == v.DefaultQueueType {
			return nil
		}
		// Not every version changes the default queue type of an
		// existing vhost: read it back rather than trust the 204.
		var got defVHost
		if err := t.api.do(ctx, "GET", path("vhosts", v.Name), nil, &got); err != nil {
			return fmt.Errorf("read back vhost %s: %w", v.Name, err)
		}
		if have := vhostDQT(got); have != v.DefaultQueueType {
			return fmt.Errorf("vhost %s: the server kept defaultQueueType %s (wanted %s): it sets it only when the vhost is created; set type: %s on each queue",
				v.Name, orUnset(have), v.DefaultQueueType, v.DefaultQueueType)
		}
		return nil
	}
}

func orUnset(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}

func vhostDetail(v config.RMQVHost) string {
	var parts []string
	if v.DefaultQueueType != "" {
		parts = append(parts, "default queue type "+v.DefaultQueueType)
	}
	if v.Description != "" {
		parts = append(parts, fmt.Sprintf("description %q", v.Description))
	}
	if len(v.Tags) > 0 {
		parts = append(parts, "tags "+showTags(cleanTags(v.Tags)))
	}
	return strings.Join(parts, ", ")
}

func (t *Target) putVHost(ctx context.Context, name string, body vhostBody) error {
	if err := t.api.do(ctx, "PUT", path("vhosts", name), body, nil); err != nil {
		return fmt.Errorf("put vhost %s: %w", name, err)
	}
	return nil
}

// --- permissions ---

func (t *Target) planPermission(s *state, user string, p config.RMQPermission) reconcile.Change {
	cur, exists := s.perms[[2]string{p.VHost, user}]
	var diffs []string
	if exists {
		diffs = appendDiff(diffs, "configure", cur.Configure, p.Configure)
		diffs = appendDiff(diffs, "write", cur.Write, p.Write)
		diffs = appendDiff(diffs, "read", cur.Read, p.Read)
	}
	return upsert(reconcile.Resource(t.name, "permission", p.VHost, user), exists,
		fmt.Sprintf("configure %q write %q read %q", p.Configure, p.Write, p.Read), diffs,
		func(ctx context.Context) error { return t.putPermission(ctx, user, p) })
}

func (t *Target) putPermission(ctx context.Context, user string, p config.RMQPermission) error {
	body := map[string]string{"configure": p.Configure, "write": p.Write, "read": p.Read}
	if err := t.api.do(ctx, "PUT", path("permissions", p.VHost, user), body, nil); err != nil {
		return fmt.Errorf("put permissions of user %s in vhost %s: %w", user, p.VHost, err)
	}
	return nil
}

func (t *Target) planTopicPermission(s *state, user string, p config.RMQTopicPermission) reconcile.Change {
	cur, exists := s.topicPerms[[3]string{p.VHost, user, p.Exchange}]
	var diffs []string
	if exists {
		diffs = appendDiff(diffs, "write", cur.Write, p.Write)
		diffs = appendDiff(diffs, "read", cur.Read, p.Read)
	}
	return upsert(reconcile.Resource(t.name, "topic-permission", p.VHost, user, p.Exchange), exists,
		fmt.Sprintf("write %q read %q", p.Write, p.Read), diffs,
		func(ctx context.Context) error { return t.putTopicPermission(ctx, user, p) })
}

func (t *Target) putTopicPermission(ctx context.Context, user string, p config.RMQTopicPermission) error {
	body := map[string]string{"exchange": p.Exchange, "write": p.Write, "read": p.Read}
	if err := t.api.do(ctx, "PUT", path("topic-permissions", p.VHost, user), body, nil); err != nil {
		return fmt.Errorf("put topic permissions of user %s in vhost %s on exchange %s: %w", user, p.VHost, p.Exchange, err)
	}
	return nil
}

// --- policies ---

func (t *Target) planPolicy(s *state, p config.RMQPolicy) reconcile.Change {
	applyTo := p.ApplyTo // defaulted by config.ApplyDefaults
	cur, exists := s.policies[[2]string{p.VHost, p.Name}]
	var diffs []string
	if exists {
		diffs = appendDiff(diffs, "pattern", cur.Pattern, p.Pattern)
		diffs = appendDiff(diffs, "apply-to", cur.ApplyTo, applyTo)
		if prio, _ := cur.Priority.Int64(); prio != int64(p.Priority) {
			diffs = append(diffs, fmt.Sprintf("priority %s -> %d", cur.Priority, p.Priority))
		}
		if !equalArgs(cur.Definition, p.Definition) {
			diffs = append(diffs, fmt.Sprintf("definition %s -> %s", show(normalize(cur.Definition)), show(normalize(p.Definition))))
		}
	}
	body := map[string]any{"pattern": p.Pattern, "apply-to": applyTo, "priority": p.Priority, "definition": toJSONArgs(p.Definition)}
	return upsert(reconcile.Resource(t.name, "policy", p.VHost, p.Name), exists,
		fmt.Sprintf("pattern %q apply-to %s priority %d definition %s", p.Pattern, applyTo, p.Priority, show(normalize(p.Definition))), diffs,
		func(ctx context.Context) error {
			if err := t.api.do(ctx, "PUT", path("policies", p.VHost, p.Name), body, nil); err != nil {
				return fmt.Errorf("put policy %s in vhost %s: %w", p.Name, p.VHost, err)
			}
			return nil
		})
}

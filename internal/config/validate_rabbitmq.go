package config

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// rmqScope is what one RabbitMQ broker declares, so that references between
// its objects can be checked: bootstrap creates only what is declared, and
// a reference to anything else would fail mid-apply. Exchanges and queues
// are keyed by vhost + "\x00" + name, since a name is unique only in its
// vhost.
type rmqScope struct {
	path      string // the broker's path, named in problems
	vhosts    map[string]bool
	exchanges map[string]bool
	queues    map[string]bool
}

func (v *validator) rabbitmq() {
	instances := seen{}
	for i, r := range v.c.RabbitMQ {
		p := v.instance("rabbitmq", i, r.Name, instances)
		v.rmqServer(p, r)
		sc := &rmqScope{path: p, vhosts: v.rmqVHosts(p, r.VHosts), exchanges: map[string]bool{}, queues: map[string]bool{}}
		xs := seen{}
		for j, x := range r.Exchanges {
			v.rmqExchange(sc, fmt.Sprintf("%s.exchanges[%d]", p, j), x, xs)
		}
		qs := seen{}
		for j, q := range r.Queues {
			v.rmqQueue(sc, fmt.Sprintf("%s.queues[%d]", p, j), q, qs)
		}
		bs := seen{}
		for j, b := range r.Bindings {
			v.rmqBinding(sc, fmt.Sprintf("%s.bindings[%d]", p, j), b, bs)
		}
		us := seen{}
		for j, u := range r.Users {
			v.rmqUser(sc, fmt.Sprintf("%s.users[%d]", p, j), u, r.User, us)
		}
		pols := seen{}
		for j, pol := range r.Policies {
			v.rmqPolicy(sc, fmt.Sprintf("%s.policies[%d]", p, j), pol, pols)
		}
	}
}

// rmqServer checks how bootstrap connects to the broker.
func (v *validator) rmqServer(p string, r RabbitMQ) {
	v.host(p+".host", r.Host)
	v.port(p+".port", r.Port)
	v.port(p+".managementPort", r.ManagementPort)
	v.tls(p, r.TLS, false, "")
	v.rmqName(p+".user", r.User)
	v.ref(p+".password", r.Password, true)
}

// rmqVHosts checks the vhosts and returns those a reference may name; "/"
// exists on every broker.
func (v *validator) rmqVHosts(p string, list []RMQVHost) map[string]bool {
	vhosts := map[string]bool{"/": true}
	vs := seen{}
	for j, vh := range list {
		vp := fmt.Sprintf("%s.vhosts[%d]", p, j)
		if v.rmqName(vp+".name", vh.Name) {
			v.dup(vs, vh.Name, vp+".name", "vhost")
			vhosts[vh.Name] = true
		}
		if vh.DefaultQueueType != "" {
			v.enum(vp+".defaultQueueType", vh.DefaultQueueType, "classic", "quorum", "stream")
		}
	}
	return vhosts
}

// rmqVHost checks a reference to a vhost and reports whether it names a
// declared one, so the caller can skip checks that depend on it.
func (v *validator) rmqVHost(sc *rmqScope, path, name string) bool {
	if !v.required(path, name) {
		return false
	}
	if !sc.vhosts[name] {
		v.add(path, "vhost %q is not declared in %s.vhosts", name, sc.path)
		return false
	}
	return true
}

// rmqExchangeRef checks a reference to an exchange in vhost vh. The amq.*
// exchanges are predefined in every vhost.
func (v *validator) rmqExchangeRef(sc *rmqScope, path, vh, name string) {
	if v.required(path, name) && !sc.exchanges[vh+"\x00"+name] && !strings.HasPrefix(name, "amq.") {
		v.add(path, "exchange %q is not declared in vhost %q", name, vh)
	}
}

func (v *validator) rmqExchange(sc *rmqScope, xp string, x RMQExchange, xs seen) {
	v.rmqVHost(sc, xp+".vhost", x.VHost)
	v.rmqObject(xp+".name", x.VHost, x.Name, "exchange", xs, sc.exchanges)
	// x-* types come from plugins, which the broker checks.
	if v.required(xp+".type", x.Type) && !strings.HasPrefix(x.Type, "x-") {
		v.enum(xp+".type", x.Type, "direct", "fanout", "topic", "headers")
	}
}

func (v *validator) rmqQueue(sc *rmqScope, qp string, q RMQQueue, qs seen) {
	v.rmqVHost(sc, qp+".vhost", q.VHost)
	v.rmqObject(qp+".name", q.VHost, q.Name, "queue", qs, sc.queues)
	if q.Type != "" && v.enum(qp+".type", q.Type, "classic", "quorum", "stream") && q.Type != "classic" {
		if !q.IsDurable() {
			v.add(qp+".durable", "%s queues are always durable", q.Type)
		}
		if q.AutoDelete {
			v.add(qp+".autoDelete", "%s queues cannot be auto-delete", q.Type)
		}
	}
	if t, ok := q.Arguments["x-queue-type"]; ok && q.Type != "" && fmt.Sprint(t) != q.Type {
		v.add(qp+".arguments.x-queue-type", "contradicts type %q; set only type", q.Type)
	}
}

func (v *validator) rmqBinding(sc *rmqScope, bp string, b RMQBinding, bs seen) {
	if !v.rmqVHost(sc, bp+".vhost", b.VHost) {
		return
	}
	v.rmqExchangeRef(sc, bp+".source", b.VHost, b.Source)
	if v.enum(bp+".destinationType", b.DestinationType, "queue", "exchange") {
		if b.DestinationType == "queue" {
			if v.required(bp+".destination", b.Destination) && !sc.queues[b.VHost+"\x00"+b.Destination] {
				v.add(bp+".destination", "queue %q is not declared in vhost %q", b.Destination, b.VHost)
			}
		} else {
			v.rmqExchangeRef(sc, bp+".destination", b.VHost, b.Destination)
		}
	}
	// Bindings that differ only in their arguments are distinct bindings.
	args, _ := json.Marshal(b.Arguments)
	v.dup(bs, strings.Join([]string{b.VHost, b.Source, b.DestinationType, b.Destination, b.RoutingKey, string(args)}, "/"), bp, "binding")
}

// rmqUser checks a managed user; admin is the user bootstrap connects as.
func (v *validator) rmqUser(sc *rmqScope, up string, u RMQUser, admin string, us seen) {
	if v.rmqName(up+".name", u.Name) {
		if u.Name == admin {
			v.add(up+".name", "%q is the admin user bootstrap connects as; it is not managed", u.Name)
		}
		v.dup(us, u.Name, up+".name", "user")
	}
	v.ref(up+".password", u.Password, true)
	if u.Rotation != nil {
		v.rotation(up+".rotation", u.Rotation)
		for _, id := range []string{u.Name + "_a", u.Name + "_b"} {
			if id == admin {
				v.add(up+".rotation", "its user %q is the admin user bootstrap connects as", id)
			}
		}
	}
	for k, t := range u.Tags {
		if !rmqNameRe.MatchString(t) {
			v.add(fmt.Sprintf("%s.tags[%d]", up, k), "invalid tag %q", t)
		}
	}
	ps := seen{}
	for k, pm := range u.Permissions {
		pp := fmt.Sprintf("%s.permissions[%d]", up, k)
		if v.rmqVHost(sc, pp+".vhost", pm.VHost) {
			v.dup(ps, pm.VHost, pp+".vhost", "permission for vhost")
		}
		v.regex(pp+".configure", pm.Configure)
		v.regex(pp+".write", pm.Write)
		v.regex(pp+".read", pm.Read)
	}
	ts := seen{}
	for k, tp := range u.TopicPermissions {
		tpp := fmt.Sprintf("%s.topicPermissions[%d]", up, k)
		if v.rmqVHost(sc, tpp+".vhost", tp.VHost) {
			v.rmqExchangeRef(sc, tpp+".exchange", tp.VHost, tp.Exchange)
			v.dup(ts, tp.VHost+"/"+tp.Exchange, tpp+".exchange", "topic permission for exchange")
		}
		v.regex(tpp+".write", tp.Write)
		v.regex(tpp+".read", tp.Read)
	}
}

func (v *validator) rmqPolicy(sc *rmqScope, pp string, pol RMQPolicy, pols seen) {
	v.rmqVHost(sc, pp+".vhost", pol.VHost)
	if v.rmqName(pp+".name", pol.Name) {
		v.dup(pols, pol.VHost+"/"+pol.Name, pp+".name", "policy")
	}
	if v.required(pp+".pattern", pol.Pattern) {
		v.regex(pp+".pattern", pol.Pattern)
	}
	v.enum(pp+".applyTo", pol.ApplyTo, "queues", "exchanges", "all", "classic_queues", "quorum_queues", "streams")
	if len(pol.Definition) == 0 {
		v.add(pp+".definition", "is required, e.g. {dead-letter-exchange: NAME}")
	}
	if dlx, ok := pol.Definition["dead-letter-exchange"].(string); ok && pol.VHost != "" {
		v.rmqExchangeRef(sc, pp+".definition.dead-letter-exchange", pol.VHost, dlx)
	}
}

// rmqObject checks an exchange or queue name: syntax, the reserved amq.
// prefix, duplicates in its vhost; a valid one is recorded in declared.
func (v *validator) rmqObject(path, vhost, name, what string, s seen, declared map[string]bool) {
	if !v.rmqName(path, name) {
		return
	}
	if strings.HasPrefix(name, "amq.") {
		v.add(path, "names starting with amq. are reserved by RabbitMQ")
	}
	v.dup(s, vhost+"/"+name, path, what)
	declared[vhost+"\x00"+name] = true
}

func (v *validator) rmqName(path, name string) bool {
	return v.name(path, name, rmqNameRe, 255, "letters, digits and _ . : / @ -")
}

// regex rejects what cannot be a RabbitMQ permission or policy pattern
// (PCRE). Go's RE2 is a subset, so only syntax both reject is an error.
func (v *validator) regex(path, re string) {
	if strings.ContainsAny(re, "\x00\n") {
		v.add(path, "pattern contains a control character")
		return
	}
	if _, err := regexp.Compile(re); err != nil && !strings.Contains(err.Error(), "invalid or unsupported Perl syntax") {
		v.add(path, "invalid regular expression %q: %s", re, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
}

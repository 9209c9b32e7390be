package config

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// redisUserRe is what bootstrap accepts as an ACL user name: Redis itself
// takes any byte string without spaces, but a name that needs quoting in
// redis-cli, an aclfile or a log line is a mistake waiting to happen.
var redisUserRe = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// redisPasswordRules are the ACL SETUSER rules that set, clear or reset a
// password. A user's passwords are bootstrap's job (its secret, and two
// during a rotation), so a rule may not touch them; "reset" clears them too.
var redisPasswordRules = map[string]bool{"nopass": true, "resetpass": true, "reset": true}

// redis checks the Redis instances: their connection, the expectations,
// and the ACL users bootstrap creates and keeps.
func (v *validator) redis() {
	instances := seen{}
	for i, r := range v.c.Redis {
		p := v.instance("redis", i, r.Name, instances)
		v.hostPort(p+".address", r.Address)
		v.tls(p, r.TLS, false, "")
		if r.Password != nil {
			v.ref(p+".password", *r.Password, false)
		}
		if r.DB < 0 || r.DB > 15 {
			v.add(p+".db", "must be between 0 and 15, got %d", r.DB)
		}
		if r.Expect.Role != "" {
			v.enum(p+".expect.role", r.Expect.Role, "master", "replica", "slave")
		}
		if mp := r.Expect.MaxmemoryPolicy; mp != "" {
			v.enum(p+".expect.maxmemoryPolicy", mp, "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
				"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")
		}
		users := seen{}
		for j, u := range r.Users {
			v.redisUser(fmt.Sprintf("%s.users[%d]", p, j), u, r.Username, users)
		}
	}
}

// redisUser checks one ACL user; admin is the user bootstrap connects as
// ("" for default).
func (v *validator) redisUser(up string, u RedisUser, admin string, us seen) {
	if v.name(up+".name", u.Name, redisUserRe, 128, "letters, digits, '_', '-', '.' and ':' only, at most 128") {
		switch {
		case u.Name == "default":
			v.add(up+".name", `"default" is the user of clients that send no name; bootstrap does not manage it`)
		case u.Name == admin:
			v.add(up+".name", "%q is the user bootstrap connects as; it is not managed", u.Name)
		}
		v.dup(us, u.Name, up+".name", "user")
	}
	v.ref(up+".password", u.Password, true)
	for k, rule := range u.Rules {
		if why := redisRuleProblem(rule); why != "" {
			v.add(fmt.Sprintf("%s.rules[%d]", up, k), "%s", why)
		}
	}
	v.rotation(up+".rotation", u.Rotation)
}

// redisRuleProblem says what is wrong with one ACL rule, or "". It never
// echoes a password rule's argument: that would be a password in a log.
func redisRuleProblem(rule string) string {
	switch {
	case rule == "":
		return "is empty"
	case strings.IndexByte("><#!", rule[0]) >= 0:
		return fmt.Sprintf("a rule starting with %q sets or removes a password: the user's password comes from its secret (password: {secret: NAME})", rule[:1])
	case strings.ContainsFunc(rule, unicode.IsSpace):
		// Not echoed: what follows a space may be a password rule.
		hint := "give each ACL rule as its own list item"
		if rule[0] == '(' {
			hint = "selectors, (RULES...), are not supported"
		}
		return "holds whitespace: " + hint
	case redisPasswordRules[strings.ToLower(rule)]:
		return fmt.Sprintf("rule %q changes the user's passwords: they come from its secret (password: {secret: NAME}); give the permissions only", rule)
	case strings.EqualFold(rule, "off"):
		// bootstrap turns the user on and verify logs in as it: a user
		// declared off would be an update on every run.
		return `rule "off" disables the user: a declared user logs in (remove the user from the config instead)`
	}
	return ""
}

package postgres

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
)

// passwordPlan is the outcome of checking one role's password: what
// differs ("" when it matches) and, when it must be set, the SCRAM verifier
// to send — computed here, not at apply time, so the PBKDF2 rounds of many
// roles run in parallel and apply holds no plaintext. The verifier is kept
// as a Credential so it prints as REDACTED should it ever be formatted.
type passwordPlan struct {
	diff     string
	verifier *credential.Credential
}

// planPasswords checks every desired password (pws, by the login that
// holds it) against the stored value and computes verifiers for those to
// set. Each costs a 4096-round PBKDF2, so they run in parallel.
func planPasswords(ctx context.Context, cur map[string]*roleState, pws map[string]credential.Credential) (map[string]passwordPlan, error) {
	out := make(map[string]passwordPlan, len(pws))
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	// In sorted order, so that the first error is the same from run to run.
	for _, name := range slices.Sorted(maps.Keys(pws)) {
		pw := pws[name]
		if ctx.Err() != nil {
			break
		}
		var stored *string
		exists := false
		if s := cur[name]; s != nil {
			stored, exists = s.password, true
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(name string) {
			defer wg.Done()
			defer func() { <-sem }()
			p := passwordPlan{diff: "password set"}
			if exists {
				p.diff = comparePassword(name, pw, stored)
			}
			var err error
			if p.diff != "" {
				var v string
				v, err = newSCRAMVerifier(pw.Reveal())
				vc := credential.New(v)
				p.verifier = &vc
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("role %s: %w", name, err)
			}
			out[name] = p
		}(name)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, firstErr
}

// passwordMatches reports whether stored, a role's rolpassword, is pw's,
// as a SCRAM verifier or PostgreSQL's md5 hash.
func passwordMatches(role string, pw credential.Credential, stored string) bool {
	d := comparePassword(role, pw, &stored)
	return d == "" || d == md5Match
}

// md5Match is comparePassword's difference for a password that is right
// but stored as md5.
const md5Match = "password stored as md5 -> SCRAM-SHA-256"

func comparePassword(role string, pw credential.Credential, stored *string) string {
	if stored == nil {
		return "password set"
	}
	if strings.HasPrefix(*stored, "md5") && len(*stored) == 35 {
		// PostgreSQL's md5 format, "md5" then hex md5(password || username).
		// A match is still a change: the role moves to SCRAM.
		sum := md5.Sum([]byte(pw.Reveal() + role))
		if hex.EncodeToString(sum[:]) == (*stored)[3:] {
			return md5Match
		}
		return "password changed"
	}
	ok, err := verifySCRAM(pw.Reveal(), *stored)
	if err != nil || !ok {
		return "password changed"
	}
	return ""
}

// planRoles plans every declared role, a rotating one as its group and
// two logins (rotation.go); pws is by the login that holds the password.
func (t *Target) planRoles(st *state, rots map[string]rotatingRole, pws map[string]passwordPlan) []reconcile.Change {
	out := make([]reconcile.Change, 0, len(t.cfg.Roles))
	for _, r := range t.cfg.Roles {
		if rr, ok := rots[r.Name]; ok {
			out = append(out, t.planRotatingRole(rr, st, pws)...)
			continue
		}
		out = append(out, t.planRole(r, st.roles[r.Name], pws[r.Name]))
	}
	return out
}

func (t *Target) planRole(r config.PGRole, cur *roleState, pw passwordPlan) reconcile.Change {
	c := reconcile.Change{Resource: t.res("role", r.Name), Action: reconcile.Noop}
	if cur == nil {
		var d []string
		if r.CanLogin() {
			d = append(d, "login")
		} else {
			d = append(d, "nologin")
		}
		if r.ConnLimit() != -1 {
			d = append(d, fmt.Sprintf("connectionLimit %d", r.ConnLimit()))
		}
		if pw.verifier != nil {
			d = append(d, "password set")
		}
		c.Action = reconcile.Create
		c.Detail = strings.Join(d, ", ")
		c.Apply = t.applyCreateRole(r.Name, roleOptions(r.CanLogin(), r.ConnLimit()), pw.verifier)
		return c
	}
	var diffs []string
	var opts []string
	if cur.login != r.CanLogin() {
		diffs = append(diffs, fmt.Sprintf("login %t -> %t", cur.login, r.CanLogin()))
		opts = append(opts, loginOption(r.CanLogin()))
	}
	if cur.connLimit != r.ConnLimit() {
		diffs = append(diffs, fmt.Sprintf("connectionLimit %d -> %d", cur.connLimit, r.ConnLimit()))
		opts = append(opts, "CONNECTION LIMIT "+strconv.Itoa(r.ConnLimit()))
	}
	if pw.diff != "" {
		diffs = append(diffs, pw.diff)
	}
	if len(diffs) == 0 {
		return c
	}
	c.Action = reconcile.Update
	c.Detail = strings.Join(diffs, ", ")
	c.Apply = t.applyAlterRole(r.Name, strings.Join(opts, " "), pw.verifier)
	return c
}

func loginOption(login bool) string {
	if login {
		return "LOGIN"
	}
	return "NOLOGIN"
}

func roleOptions(login bool, limit int) string {
	return loginOption(login) + " CONNECTION LIMIT " + strconv.Itoa(limit)
}

// planMemberships only adds: a role's other memberships may be granted by
// someone else, and the config owns only the ones it names, and, for a
// rotating role, its logins' memberships in it.
func (t *Target) planMemberships(st *state, rots map[string]rotatingRole) []reconcile.Change {
	var out []reconcile.Change
	for _, r := range t.cfg.Roles {
		for _, in := range r.InRoles {
			out = append(out, t.planMembership(st, r.Name, in))
		}
		if rr, ok := rots[r.Name]; ok {
			for _, id := range rr.ids {
				out = append(out, t.planMembership(st, id, rr.Name))
			}
		}
	}
	return out
}

// planMembership makes role a member of in that can use in's privileges
// and SET ROLE to it, as every membership did before PostgreSQL 16: from 16
// one that lacks INHERIT or SET is an update (inheriting as the member's
// rolinherit says, which is true for every role bootstrap creates).
func (t *Target) planMembership(st *state, role, in string) reconcile.Change {
	c := reconcile.Change{Resource: t.res("membership", role, in), Action: reconcile.Noop}
	inherit := true
	var m membership
	var member bool
	if s := st.roles[role]; s != nil {
		inherit = s.inherit
		m, member = s.memberOf[in]
	}
	var lacks []string
	if inherit && !m.inherit {
		lacks = append(lacks, "INHERIT")
	}
	if !m.set {
		lacks = append(lacks, "SET")
	}
	switch {
	case !member:
		c.Action = reconcile.Create
		c.Detail = fmt.Sprintf("grant role %s to %s", in, role)
	case len(lacks) > 0:
		c.Action = reconcile.Update
		c.Detail = "missing " + strings.Join(lacks, ", ")
	default:
		return c
	}
	c.Apply = t.applyMembership(role, in, membershipOptions(st.major, inherit))
	return c
}

// membershipOptions is the WITH clause GRANT role needs on a server of
// major: none before 16; from 16 SET and, for a member that inherits by
// default, INHERIT, spelled out because a GRANT without them leaves an
// existing membership's options as they are.
func membershipOptions(major int, inherit bool) string {
	switch {
	case major < membershipOptionsSince:
		return ""
	case inherit:
		return " WITH INHERIT TRUE, SET TRUE"
	default:
		return " WITH SET TRUE"
	}
}

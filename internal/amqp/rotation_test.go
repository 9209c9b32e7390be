package amqp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/health-data-ai/bootstrap/internal/config"
	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// rotatingUser is a unique user name whose two identities, NAME_a and
// NAME_b, are deleted with it when the test ends.
func (f *fixture) rotatingUser(t *testing.T, prefix string) (name, a, b string) {
	t.Helper()
	name = f.user(t, prefix)
	a, b = name+"_a", name+"_b"
	for _, id := range []string{a, b} {
		t.Cleanup(func() {
			if err := f.admin.do(context.Background(), "DELETE", path("users", id), nil, nil); err != nil && !isStatus(err, 404) {
				t.Errorf("cleanup user %s: %v", id, err)
			}
		})
	}
	return name, a, b
}

// rotatingConfig declares vhost vh and user name with rotation, its
// password in secret rmq-etl.
func rotatingConfig(cfg config.RabbitMQ, vh, name string) config.RabbitMQ {
	cfg.VHosts = []config.RMQVHost{{Name: vh}}
	cfg.Users = []config.RMQUser{{
		Name:     name,
		Password: config.SecretRef{Secret: "rmq-etl"},
		Rotation: &config.Rotation{},
		Permissions: []config.RMQPermission{
			{VHost: vh, Configure: `^etl\.`, Write: ".*", Read: ".*"},
		},
		TopicPermissions: []config.RMQTopicPermission{
			{VHost: vh, Exchange: "health.events", Write: `^ingest\.`, Read: ".*"},
		},
	}}
	return cfg
}

// holds makes the source say that username holds the current password.
func (f *fixture) holds(username string, pw credential.Credential) {
	f.creds["rmq-etl"] = pw
	f.creds[credential.UsernameKey("rmq-etl")] = credential.New(username)
}

// dialAs logs in over AMQP as an application would, naming its connection.
func (f *fixture) dialAs(vh, user string, pw credential.Credential, connName string) (*amqp091.Connection, error) {
	props := amqp091.NewConnectionProperties()
	props.SetClientConnectionName(connName)
	return amqp091.DialConfig("amqp://"+net.JoinHostPort(f.srv.Host, strconv.Itoa(f.srv.Port))+"/", amqp091.Config{
		SASL:       []amqp091.Authentication{&amqp091.PlainAuth{Username: user, Password: pw.Reveal()}},
		Vhost:      vh,
		Properties: props,
		Dial:       amqp091.DefaultDial(20 * time.Second),
	})
}

// userOf reads a user as the broker keeps it.
func (f *fixture) userOf(t *testing.T, name string) defUser {
	t.Helper()
	var u defUser
	f.get(t, path("users", name), &u)
	return u
}

// publisher publishes with confirms to a queue of its own and reads each
// message back: what an application keeps doing over its connection.
type publisher struct {
	ch    *amqp091.Channel
	queue string
}

func newPublisher(t *testing.T, c *amqp091.Connection) *publisher {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare(testenv.Unique("etl.rot"), false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &publisher{ch: ch, queue: q.Name}
}

// publish returns nil once the broker confirmed the message and it could
// be read back from the queue.
func (p *publisher) publish(body string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "", p.queue, true, false, amqp091.Publishing{Body: []byte(body)})
	if err != nil {
		return err
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("publisher confirm: ack %t, %v", ok, err)
	}
	m, ok, err := p.ch.Get(p.queue, true)
	if err != nil || !ok || string(m.Body) != body {
		return fmt.Errorf("read back: got %t %q, %v", ok, m.Body, err)
	}
	return nil
}

func isAccessRefused(err error) bool { return isAMQPCode(err, amqp091.AccessRefused) }

// freshRotation applies a rotating user on a fresh broker, the source
// saying that NAME_a holds the password (a first value written by
// bootstrap), and checks what (a) of the design asks: NAME_a with the
// password, NAME_b without, both with the permissions, no NAME.
func freshRotation(t *testing.T, f *fixture) (cfg config.RabbitMQ, vh, name, a, b string, pwA credential.Credential) {
	t.Helper()
	vh = f.vhost(t, "rot")
	name, a, b = f.rotatingUser(t, "rot")
	cfg = rotatingConfig(f.config(), vh, name)
	pwA = credential.New("a-" + testenv.Unique("pw"))
	f.holds(a, pwA)
	changes, failed := run(t, f.target(cfg))
	if len(failed) > 0 {
		t.Fatalf("apply: %v", failed)
	}
	want := []string{
		"create rabbitmq/events/vhost/" + vh,
		"create rabbitmq/events/user/" + a,
		"create rabbitmq/events/user/" + b,
		"create rabbitmq/events/permission/" + vh + "/" + a,
		"create rabbitmq/events/permission/" + vh + "/" + b,
		"create rabbitmq/events/topic-permission/" + vh + "/" + a + "/health.events",
		"create rabbitmq/events/topic-permission/" + vh + "/" + b + "/health.events",
	}
	if got := writes(changes); !slices.Equal(got, want) {
		t.Fatalf("first apply:\n got %q\nwant %q", got, want)
	}
	if d := byResource(changes)["rabbitmq/events/user/"+b].Detail; !strings.Contains(d, "no password") {
		t.Errorf("detail of %s: %q, want it to say it gets no password", b, d)
	}
	if u := f.userOf(t, a); !verifyPassword(u.PasswordHash, u.HashingAlgorithm, pwA.Reveal()) {
		t.Errorf("%s: stored hash does not verify the current password", a)
	}
	if u := f.userOf(t, b); u.PasswordHash != "" {
		t.Errorf("%s: password hash %q, want none", b, u.PasswordHash)
	}
	return cfg, vh, name, a, b, pwA
}

// TestRotationFresh: a rotating user on a fresh broker is NAME_a, who logs
// in with the password, and NAME_b, who cannot log in at all; verify logs
// in as NAME_a; a second apply changes nothing.
func TestRotationFresh(t *testing.T) {
	f := newFixture(t)
	cfg, vh, name, a, b, pwA := freshRotation(t, f)
	if c, err := f.dialAs(vh, a, pwA, "test"); err != nil {
		t.Errorf("login as %s: %v", a, err)
	} else {
		c.Close()
	}
	// A refused login takes the broker seconds to close: both at once.
	refused := make(chan error, 2)
	for _, pw := range []credential.Credential{pwA, credential.New("")} {
		go func() {
			c, err := f.dialAs(vh, b, pw, "test")
			if c != nil {
				c.Close()
			}
			refused <- err
		}()
	}
	for range 2 {
		if err := <-refused; !isAccessRefused(err) {
			t.Errorf("login as passwordless %s: %v, want access refused", b, err)
		}
	}
	if err := f.admin.do(context.Background(), "GET", path("users", name), nil, nil); !isStatus(err, 404) {
		t.Errorf("the declared name %s: %v, want no such user", name, err)
	}

	tgt := f.target(cfg)
	defer tgt.Close()
	if err := tgt.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	checks, _ := tgt.Verify(context.Background())
	if len(checks) != 1 || checks[0].Resource != "rabbitmq/events/login/"+a+"/"+vh {
		t.Fatalf("verify checks %v, want one login as %s", checks, a)
	}
	if err := checks[0].Apply(context.Background()); err != nil {
		t.Errorf("verify: %v", err)
	}
	if w := writes(plan(t, f.target(cfg))); len(w) != 0 {
		t.Errorf("second plan: %v, want none", w)
	}
}

// waitSessions polls Sessions until a line names connName: the management
// API lists a connection only once its first statistics arrive.
func waitSessions(t *testing.T, rot *Rotator, user, connName string) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		lines, err := rot.Sessions(context.Background(), user)
		if err != nil {
			t.Fatalf("sessions of %s: %v", user, err)
		}
		for _, l := range lines {
			if strings.HasSuffix(l, " "+connName) && strings.HasPrefix(l, "127.0.0.1:") {
				return lines
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions of %s: %q, want a line for %s", user, lines, connName)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestRotatorFlow walks one rotation through the Rotator against the
// broker: the new password set on NAME_b and proven; NAME_a's open
// connection, listed by Sessions, keeps publishing (with confirms) after
// NAME_a is retired, while a new login as NAME_a fails; the identity that
// holds the current password is never changed or retired; and after the
// promotion the plan has nothing to do and leaves NAME_a passwordless.
func TestRotatorFlow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg, vh, _, a, b, pwA := freshRotation(t, f)
	rot := NewRotator(cfg, cfg.Users[0].Name, f.creds, slog.New(slog.DiscardHandler))
	defer rot.Close()
	pwB := credential.New("b-" + testenv.Unique("pw"))

	// Only the standby takes a new password.
	for _, user := range []string{a, "nobody"} {
		err := rot.Set(ctx, user, pwB)
		if err == nil || !strings.Contains(err.Error(), user) || strings.Contains(err.Error(), pwB.Reveal()) {
			t.Errorf("Set on %s: %v, want a refusal naming the user", user, err)
		}
	}
	if err := rot.Set(ctx, b, pwB); err != nil {
		t.Fatal(err)
	}
	hashB := f.userOf(t, b).PasswordHash
	if err := rot.Set(ctx, b, pwB); err != nil || f.userOf(t, b).PasswordHash != hashB {
		t.Errorf("Set again: %v, hash kept %t", err, f.userOf(t, b).PasswordHash == hashB)
	}
	var perms []defPermission
	f.get(t, path("users", b, "permissions"), &perms)
	if len(perms) != 1 || perms[0].VHost != vh {
		t.Errorf("%s permissions after Set: %+v", b, perms)
	}
	if err := rot.Prove(ctx, b, pwB); err != nil {
		t.Errorf("Prove %s: %v", b, err)
	}
	wrong := credential.New("wrong-" + testenv.Unique("pw"))
	if err := rot.Prove(ctx, b, wrong); err == nil || !strings.Contains(err.Error(), b) || strings.Contains(err.Error(), wrong.Reveal()) {
		t.Errorf("Prove with a wrong password: %v, want a failure naming %s and no password", err, b)
	}

	// An application on NAME_a, publishing.
	app, err := f.dialAs(vh, a, pwA, "rotation-test-app")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	pub := newPublisher(t, app)
	if err := pub.publish("before"); err != nil {
		t.Fatal(err)
	}
	waitSessions(t, rot, a, "rotation-test-app")
	if s, err := rot.Sessions(ctx, "nobody-"+testenv.Unique("u")); err != nil || s != nil {
		t.Errorf("sessions of a user without connections: %q, %v; want nil", s, err)
	}
	if ok, err := rot.Active(ctx, a, pwA); !ok || err != nil {
		t.Errorf("Active(%s) = %t, %v; want true", a, ok, err)
	}
	if err := rot.Retire(ctx, a, pwA); err == nil || !strings.Contains(err.Error(), a) {
		t.Errorf("Retire of the current holder %s: %v, want a refusal", a, err)
	}

	// Promotion: the source now gives NAME_b; NAME_a is retired.
	f.holds(b, pwB)
	if err := rot.Retire(ctx, a, pwA); err != nil {
		t.Fatal(err)
	}
	if ok, err := rot.Active(ctx, a, pwA); ok || err != nil {
		t.Errorf("Active(%s) after Retire = %t, %v; want false", a, ok, err)
	}
	if c, err := f.dialAs(vh, a, pwA, "test"); !isAccessRefused(err) {
		t.Errorf("new login as retired %s: %v, want access refused", a, err)
		if c != nil {
			c.Close()
		}
	}
	if app.IsClosed() {
		t.Fatal("the application's connection was closed by Retire")
	}
	if err := pub.publish("after"); err != nil {
		t.Errorf("publishing on the open connection after Retire: %v", err)
	}
	f.get(t, path("users", a, "permissions"), &perms)
	if len(perms) != 1 {
		t.Errorf("%s permissions after Retire: %+v, want kept", a, perms)
	}
	if err := rot.Retire(ctx, a, pwA); err != nil {
		t.Errorf("Retire again: %v", err)
	}
	if err := rot.Retire(ctx, b, pwB); err == nil {
		t.Error("Retire of the new current holder succeeded")
	}

	// (c) The plan agrees with the rotation: nothing to do.
	if w := writes(plan(t, f.target(cfg))); len(w) != 0 {
		t.Errorf("plan after the rotation: %v, want none", w)
	}
	if u := f.userOf(t, a); u.PasswordHash != "" {
		t.Errorf("%s got a password back", a)
	}
	if u := f.userOf(t, b); !verifyPassword(u.PasswordHash, u.HashingAlgorithm, pwB.Reveal()) {
		t.Errorf("%s lost its password", b)
	}
	if err := pub.publish("end"); err != nil {
		t.Errorf("publishing after the plan: %v", err)
	}
}

// TestRotationLegacy: a value stored before rotation was configured is
// the declared name's own login, managed as before beside two passwordless
// identities. Once the source gives NAME_a, NAME keeps its password (the
// rotation retires it) but its tags stay managed; a tag change never
// touches a password the plan does not own, even one set after the plan
// read it; and a source naming a stranger fails the plan.
func TestRotationLegacy(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	vh := f.vhost(t, "legacy")
	name, a, b := f.rotatingUser(t, "legacy")
	cfg := rotatingConfig(f.config(), vh, name)
	pw0 := f.creds["rmq-etl"] // plain: no username key
	changes, failed := run(t, f.target(cfg))
	if len(failed) > 0 {
		t.Fatalf("apply: %v", failed)
	}
	for _, u := range []string{name, a, b} {
		if c := byResource(changes)["rabbitmq/events/user/"+u]; c.Action != reconcile.Create {
			t.Errorf("user %s: %s, want create", u, c.Action)
		}
	}
	if u := f.userOf(t, name); !verifyPassword(u.PasswordHash, u.HashingAlgorithm, pw0.Reveal()) {
		t.Errorf("%s does not take the legacy password", name)
	}
	for _, u := range []string{a, b} {
		if f.userOf(t, u).PasswordHash != "" {
			t.Errorf("%s has a password", u)
		}
	}

	// The first rotation moves the credential to NAME_a.
	pw1 := credential.New("one-" + testenv.Unique("pw"))
	rot := NewRotator(cfg, name, f.creds, nil)
	defer rot.Close()
	if err := rot.Set(ctx, a, pw1); err != nil {
		t.Fatal(err)
	}
	f.holds(a, pw1)
	if w := writes(plan(t, f.target(cfg))); len(w) != 0 {
		t.Errorf("plan after the promotion: %v, want none (NAME keeps its password)", w)
	}

	// A tag change, planned; the rotation sets NAME_b before it applies.
	cfg.Users[0].Tags = []string{"monitoring"}
	tgt := f.target(cfg)
	defer tgt.Close()
	if err := tgt.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	changes, err := tgt.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pw2 := credential.New("two-" + testenv.Unique("pw"))
	if err := rot.Set(ctx, b, pw2); err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Apply != nil {
			if err := c.Apply(ctx); err != nil {
				t.Fatalf("%s: %v", c.Resource, err)
			}
		}
	}
	for u, pw := range map[string]credential.Credential{name: pw0, a: pw1, b: pw2} {
		got := f.userOf(t, u)
		if !verifyPassword(got.PasswordHash, got.HashingAlgorithm, pw.Reveal()) || !slices.Equal(tagList(got.Tags), []string{"monitoring"}) {
			t.Errorf("%s after the tag change: password kept %t, tags %s", u, verifyPassword(got.PasswordHash, got.HashingAlgorithm, pw.Reveal()), got.Tags)
		}
	}

	// The rotation retires NAME; the plan leaves it so.
	if err := rot.Retire(ctx, name, pw0); err != nil {
		t.Fatal(err)
	}
	if w := writes(plan(t, f.target(cfg))); len(w) != 0 || f.userOf(t, name).PasswordHash != "" {
		t.Errorf("plan after retiring %s: %v, hash %q", name, w, f.userOf(t, name).PasswordHash)
	}

	f.creds[credential.UsernameKey("rmq-etl")] = credential.New("stranger")
	stranger := f.target(cfg)
	defer stranger.Close()
	if err := stranger.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.Plan(ctx); err == nil || !strings.Contains(err.Error(), `"stranger"`) || !strings.Contains(err.Error(), name) {
		t.Errorf("plan with a stranger holding the secret: %v", err)
	}
}

// TestRotatorRefusals: a Rotator for a user the config does not rotate
// fails every call, naming the user, without touching the broker.
func TestRotatorRefusals(t *testing.T) {
	cfg := config.RabbitMQ{Name: "events", Host: "127.0.0.1", Port: 1, ManagementPort: 1,
		Users: []config.RMQUser{{Name: "plain", Password: config.SecretRef{Secret: "s"}}}}
	pw := credential.New("x")
	for _, user := range []string{"plain", "missing"} {
		rot := NewRotator(cfg, user, credential.Resolved{"s": pw}, nil)
		ctx := context.Background()
		_, activeErr := rot.Active(ctx, user+"_a", pw)
		_, sessErr := rot.Sessions(ctx, user+"_a")
		for _, err := range []error{rot.Set(ctx, user+"_a", pw), rot.Prove(ctx, user+"_a", pw), rot.Retire(ctx, user+"_a", pw), activeErr, sessErr} {
			if err == nil || !strings.Contains(err.Error(), "user "+user) {
				t.Errorf("%s: %v, want an error naming the user", user, err)
			}
		}
		if err := rot.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestConnectionDescribe(t *testing.T) {
	for _, tc := range []struct {
		c    connection
		want string
	}{
		{connection{PeerHost: "10.0.0.7", PeerPort: json.Number("5123"), ClientProperties: json.RawMessage(`{"connection_name":"etl-worker","product":"x"}`)}, "10.0.0.7:5123 etl-worker"},
		{connection{PeerHost: "::1", PeerPort: json.Number("5123"), ClientProperties: json.RawMessage(`{"product":"RabbitMQ"}`)}, "[::1]:5123 RabbitMQ"},
		{connection{PeerHost: "10.0.0.7", PeerPort: json.Number("1"), ClientProperties: json.RawMessage(`[]`)}, "10.0.0.7:1"},
		{connection{PeerHost: "10.0.0.7", PeerPort: json.Number("1")}, "10.0.0.7:1"},
	} {
		if got := tc.c.describe(); got != tc.want {
			t.Errorf("describe = %q, want %q", got, tc.want)
		}
	}
}

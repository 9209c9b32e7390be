package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/jackc/pgx/v5"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

// TestRotationZeroFailedConnections: for each of PostgreSQL, RabbitMQ and
// Redis, three rotations and a fourth killed at each step, with an
// application that never sees a failure (rotate_zero_test.go).
func TestRotationZeroFailedConnections(t *testing.T) {
	t.Run("postgres", func(t *testing.T) { rotatePostgres(t, false) })
	// The same with the credentials in OCI Vault (the stand-in): the
	// staged value is a PENDING version, promoted to CURRENT.
	t.Run("postgres-ocivault", func(t *testing.T) {
		w := rotatePostgres(t, true)
		cur := w.vault.Stages(w.secret)
		if n := len(cur); n < 9 || !slices.Equal(cur[n-1], []string{"CURRENT", "LATEST"}) || !slices.Equal(cur[n-2], []string{"PREVIOUS"}) {
			t.Errorf("the rotating secret's version stages %v: want the last CURRENT, the one before PREVIOUS, after 9 rotations", cur)
		}
		if md := w.vault.Metadata(w.secret); md["bootstrapPromotedVersion"] != fmt.Sprint(len(cur)) {
			t.Errorf("metadata %v does not record the promotion of version %d", md, len(cur))
		}
	})
	t.Run("rabbitmq", func(t *testing.T) {
		rmq := testenv.RabbitMQ(t)
		user, vhost := testenv.Unique("rotapp"), testenv.Unique("rotvh")
		w := newRotationWorld(t, false, func(secret string) (string, func() app) {
			return fmt.Sprintf(`rabbitmq:
  - name: events
    host: %s
    port: %d
    managementPort: %d
    user: %s
    password: {secret: rabbit-admin}
    vhosts: [{name: %s}]
    queues: [{name: work, vhost: %s}]
    users:
      - name: %s
        password: {secret: %s}
        permissions: [{vhost: %s, configure: "", write: ".*", read: ".*"}]
        rotation: {grace: 3s}
`, rmq.Host, rmq.Port, rmq.ManagementPort, rmq.User, vhost, vhost, user, secret, vhost),
				func() app { return &amqpApp{host: rmq.Host, port: rmq.Port, vhost: vhost} }
		})
		w.write("rabbit-admin", rmq.Password)
		w.rotate(func(l login) error { return (&amqpApp{host: rmq.Host, port: rmq.Port, vhost: vhost}).fresh(l) })
	})
	t.Run("redis", func(t *testing.T) {
		rd := testenv.Redis(t, "health")
		user := testenv.Unique("rotapp")
		w := newRotationWorld(t, false, func(secret string) (string, func() app) {
			return fmt.Sprintf(`redis:
  - name: health
    address: "%s"
    password: {secret: redis-admin}
    users:
      - {name: %s, password: {secret: %s}, rules: ["~rot:*", "+@all"], rotation: {grace: 3s}}
`, rd.Addr, user, secret), func() app { return &redisApp{addr: rd.Addr} }
		})
		w.write("redis-admin", rd.Password)
		t.Cleanup(func() {
			c := goredis.NewClient(&goredis.Options{Addr: rd.Addr, Password: rd.Password})
			defer c.Close()
			c.Do(context.Background(), "ACL", "DELUSER", user)
		})
		w.rotate(func(l login) error { return (&redisApp{addr: rd.Addr}).fresh(l) })
	})
}

// rotatePostgres runs the scenario against PostgreSQL, the credentials in
// a file source or in the OCI Vault stand-in.
func rotatePostgres(t *testing.T, ociVault bool) *rotationWorld {
	pg := testenv.Postgres(t, "health")
	role, db := testenv.Unique("rotapp"), testenv.Unique("rotdb")
	w := newRotationWorld(t, ociVault, func(secret string) (string, func() app) {
		return fmt.Sprintf(`postgres:
  - name: health
    host: %s
    port: %d
    sslmode: disable
    admin: {password: {secret: pg-admin}}
    roles:
      - {name: %s, password: {secret: %s}, rotation: {grace: 3s}}
    databases:
      - {name: %s, owner: %s}
`, pg.Host, pg.Port, role, secret, db, role), func() app { return &pgApp{host: pg.Host, port: pg.Port, db: db} }
	})
	w.write("pg-admin", pg.Password)
	t.Cleanup(func() { dropPG(t, pg, db, role) })
	w.rotate(func(l login) error { return (&pgApp{host: pg.Host, port: pg.Port, db: db}).fresh(l) })
	return w
}

func dropPG(t *testing.T, pg testenv.PG, db, role string) {
	c := pg.Admin(t, "postgres")
	defer c.Close(context.Background())
	ctx := context.Background()
	_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
	for _, r := range []string{role + "_a", role + "_b", role} {
		_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize())
	}
}

// pgApp: three long-lived sessions, and a new connection per round.
type pgApp struct {
	host string
	port int
	db   string
	pool []*pgx.Conn
}

func (a *pgApp) connect(l login) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := url.URL{Scheme: "postgres", User: url.UserPassword(l.username, l.password),
		Host: net.JoinHostPort(a.host, fmt.Sprint(a.port)), Path: a.db, RawQuery: "sslmode=disable"}
	return pgx.Connect(ctx, u.String())
}

func (a *pgApp) open(l login) error {
	for range 3 {
		c, err := a.connect(l)
		if err != nil {
			return err
		}
		a.pool = append(a.pool, c)
	}
	return nil
}

func (a *pgApp) use() error {
	for _, c := range a.pool {
		var n int
		if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&n); err != nil {
			return err
		}
	}
	return nil
}

func (a *pgApp) fresh(l login) error {
	c, err := a.connect(l)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var n int
	return c.QueryRow(context.Background(), "SELECT 1").Scan(&n)
}

func (a *pgApp) close() {
	for _, c := range a.pool {
		c.Close(context.Background())
	}
}

// amqpApp: one long-lived connection publishing with confirms, and a new
// connection per round.
type amqpApp struct {
	host  string
	port  int
	vhost string
	conn  *amqp.Connection
	ch    *amqp.Channel
}

func (a *amqpApp) dial(l login) (*amqp.Connection, error) {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(l.username, l.password),
		Host: net.JoinHostPort(a.host, fmt.Sprint(a.port)), Path: "/" + a.vhost}
	return amqp.DialConfig(u.String(), amqp.Config{Dial: amqp.DefaultDial(5 * time.Second), Vhost: a.vhost})
}

func (a *amqpApp) open(l login) error {
	c, err := a.dial(l)
	if err != nil {
		return err
	}
	a.conn = c
	if a.ch, err = c.Channel(); err != nil {
		return err
	}
	return a.ch.Confirm(false)
}

func (a *amqpApp) use() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dc, err := a.ch.PublishWithDeferredConfirmWithContext(ctx, "", "work", false, false, amqp.Publishing{Body: []byte("x")})
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("publish nacked")
	}
	return nil
}

func (a *amqpApp) fresh(l login) error {
	c, err := a.dial(l)
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	return ch.Close()
}

func (a *amqpApp) close() {
	if a.conn != nil {
		a.conn.Close()
	}
}

// redisApp: two long-lived connections, and a new one per round.
type redisApp struct {
	addr string
	pool []*goredis.Client
}

func (a *redisApp) client(l login) *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: a.addr, Username: l.username, Password: l.password,
		PoolSize: 1, MaxRetries: -1, DialTimeout: 5 * time.Second})
}

func (a *redisApp) open(l login) error {
	for range 2 {
		c := a.client(l)
		if err := c.Ping(context.Background()).Err(); err != nil {
			return err
		}
		a.pool = append(a.pool, c)
	}
	return nil
}

func (a *redisApp) use() error {
	for _, c := range a.pool {
		if err := c.Set(context.Background(), "rot:k", "v", time.Minute).Err(); err != nil {
			return err
		}
	}
	return nil
}

func (a *redisApp) fresh(l login) error {
	c := a.client(l)
	defer c.Close()
	return c.Ping(context.Background()).Err()
}

func (a *redisApp) close() {
	for _, c := range a.pool {
		c.Close()
	}
}

package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// gooseTable is goose's version table, schema-qualified so that plan (as
// the admin) and the migrations (as the database owner, whose "$user"
// schema may exist) read and write the same table.
const gooseTable = "public.goose_db_version"

// migrator runs one database's goose migrations as the database owner.
type migrator struct {
	db       *sql.DB
	provider *goose.Provider
	sources  []*goose.Source
}

// newMigrator reads the migration folder (no database access: goose opens
// connections lazily) and prepares a provider whose connections log in as
// the admin and SET ROLE to the database owner, so the objects migrations
// create belong to the owner and the owner's default privileges apply.
func newMigrator(cc *pgx.ConnConfig, owner, dir string) (*migrator, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("migrations folder: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("migrations folder %s is not a directory", dir)
	}
	setRole := "SET ROLE " + ident(owner)
	db := stdlib.OpenDB(*cc, stdlib.OptionAfterConnect(func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, setRole)
		return err
	}))
	// A second connection is all goose needs (the lock holder and the
	// migration may differ); more would only cost logins.
	db.SetMaxOpenConns(2)
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("goose locker: %w", err)
	}
	m := &migrator{db: db}
	p, err := goose.NewProvider(goose.DialectPostgres, db, os.DirFS(dir),
		goose.WithSessionLocker(locker),
		goose.WithTableName(gooseTable),
		goose.WithDisableGlobalRegistry(true),
	)
	switch {
	case errors.Is(err, goose.ErrNoMigrations):
		// An empty folder is a database with no migrations yet.
		return m, nil
	case err != nil:
		db.Close()
		return nil, fmt.Errorf("migrations folder %s: %w", filepath.Clean(dir), err)
	}
	m.provider = p
	m.sources = p.ListSources()
	return m, nil
}

// upTo applies every pending migration up to and including version, so the
// plan's per-version changes stay correct when one of them is retried.
func (m *migrator) upTo(ctx context.Context, version int64) error {
	if m.provider == nil {
		return nil
	}
	_, err := m.provider.UpTo(ctx, version)
	return err
}

func (m *migrator) close() error {
	return m.db.Close()
}

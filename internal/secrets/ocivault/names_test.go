package ocivault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/health-data-ai/bootstrap/internal/reconcile"
	"github.com/health-data-ai/bootstrap/internal/secrets"
	"github.com/health-data-ai/bootstrap/internal/secrets/ocivault/ocitest"
)

// applyRun runs the secrets target once in apply mode and returns it with
// its results, all of them as one text for leak checks.
func applyRun(s *Source, names map[string]string, wait time.Duration) (*secrets.Credentials, []reconcile.Result, string) {
	creds := secrets.NewCredentials(s, names, true, 32)
	rs := reconcile.Run(context.Background(), []reconcile.Target{creds}, reconcile.Options{Mode: reconcile.ModeApply, WaitTimeout: wait})
	var all []string
	for _, r := range rs {
		all = append(all, fmt.Sprintf("%+v", r))
	}
	return creds, rs, strings.Join(all, "\n")
}

func wantAll(t *testing.T, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%q does not contain %q", text, w)
		}
	}
}

// TestVaultPendingDeletionNameFailsTheRun: a name held by a secret pending
// deletion cannot be adopted (its bundle answers 404, CreateSecret 400
// InvalidParameter): the run fails naming the secret and how to restore
// it, whether the plan sees it or the deletion is scheduled between plan
// and apply.
func TestVaultPendingDeletionNameFailsTheRun(t *testing.T) {
	const held = "pg-health-healthapi"
	heldID := "ocid1.vaultsecret.oc1..deleted-" + held
	names := map[string]string{"pg-health-admin": "postgres[0].admin.password", held: "postgres[0].roles[0].password"}

	t.Run("plan", func(t *testing.T) {
		s, f, logs := newTest(t, 5*time.Second)
		f.Put("pg-health-admin", "existing-admin-password-0123456789")
		f.PendingDeletion[held] = true
		creds, rs, all := applyRun(s, names, 5*time.Second)
		if len(rs) != 1 || rs[0].Status != reconcile.Failed {
			t.Fatalf("want the plan to fail, got %s", all)
		}
		t.Logf("the run failed: %s", rs[0].Error)
		wantAll(t, rs[0].Error, `"`+held+`"`, testVault, "PENDING_DELETION", heldID,
			"oci vault secret cancel-secret-deletion --secret-id "+heldID, "choose another name", "nothing was generated")
		if f.CreateCalls != 0 {
			t.Fatalf("%d CreateSecret calls", f.CreateCalls)
		}
		if _, ok := creds.Resolved()[held]; ok {
			t.Fatal("a value was generated for a name that cannot be used")
		}
		assertNoLeak(t, "existing-admin-password-0123456789", logs.String(), all)
	})

	t.Run("apply", func(t *testing.T) {
		s, f, logs := newTest(t, 5*time.Second)
		f.Put("pg-health-admin", "existing-admin-password-0123456789")
		creds := secrets.NewCredentials(s, names, true, 32)
		changes, err := creds.Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The secret is deleted, and its deletion pending, after the plan.
		f.Do(func(srv *ocitest.Server) { srv.PendingDeletion[held] = true })
		var applied int
		for _, c := range changes {
			if c.Apply == nil {
				continue
			}
			applied++
			err = c.Apply(context.Background())
			if err == nil || errors.Is(err, secrets.ErrExists) {
				t.Fatalf("create over a name pending deletion: %v", err)
			}
			t.Logf("the create failed: %v", err)
			wantAll(t, err.Error(), `"`+held+`"`, testVault, "400 InvalidParameter", "PENDING_DELETION",
				"oci vault secret cancel-secret-deletion --secret-id "+heldID, "choose another name")
			assertNoLeak(t, creds.Resolved()[held].Reveal(), err.Error(), logs.String())
		}
		if applied != 1 || f.Creates != 0 {
			t.Fatalf("%d changes applied, %d secrets created", applied, f.Creates)
		}
	})
}

// TestVaultLostRaceAdoptsWinnerWhileItsVersionIsCreating: another run creates
// the secret between this run's plan and its CreateSecret (409), and the
// winner's version answers 404 for a few reads while it is CREATING: the
// run waits for it and adopts the winner's value, without a second create,
// well within the wait.
func TestVaultLostRaceAdoptsWinnerWhileItsVersionIsCreating(t *testing.T) {
	const wait = 10 * time.Second
	s, f, logs := newTest(t, wait)
	const winner = "Winner-Value-Of-The-Other-Run-0123"
	f.OtherWriter["rabbitmq-etl"] = winner
	f.UnreadableReads = 3
	start := time.Now()
	creds, rs, all := applyRun(s, map[string]string{"rabbitmq-etl": "rabbitmq[0].users[0].password"}, wait)
	took := time.Since(start)
	if len(rs) != 1 || rs[0].Status != reconcile.Applied || rs[0].Action != reconcile.Create {
		t.Fatalf("want one applied create, got %s", all)
	}
	if got := creds.Resolved()["rabbitmq-etl"]; got.Reveal() != winner {
		t.Fatal("the run did not adopt the winner's value")
	}
	if v, _ := f.Value("rabbitmq-etl"); v != winner || f.Creates != 0 || f.CreateCalls != 1 {
		t.Fatalf("vault holds the winner: %v, creates %d, CreateSecret calls %d", v == winner, f.Creates, f.CreateCalls)
	}
	if took > wait/2 {
		t.Fatalf("took %s", took)
	}
	t.Logf("adopted the winner's value after %s", took.Round(time.Millisecond))
	wantAll(t, logs.String(), "waiting for vault secret another run created", "secret=rabbitmq-etl")
	assertNoLeak(t, winner, logs.String(), all)
}

// TestVaultLostRaceUnreadableWinnerFailsWithinWait: when the winner's value
// never becomes readable (this principal may create but not read), the
// run fails naming the secret after about the wait, not at once and not
// never.
func TestVaultLostRaceUnreadableWinnerFailsWithinWait(t *testing.T) {
	const wait = 2 * time.Second
	s, f, _ := newTest(t, wait)
	f.OtherWriter["redis-health"] = "Winner-Value-Never-Readable-0123"
	f.UnreadableReads = 1 << 20
	start := time.Now()
	_, rs, all := applyRun(s, map[string]string{"redis-health": "redis[0].password"}, wait)
	took := time.Since(start)
	if len(rs) != 1 || rs[0].Status != reconcile.Failed {
		t.Fatalf("want a failed create, got %s", all)
	}
	t.Logf("failed after %s: %s", took.Round(time.Millisecond), rs[0].Error)
	wantAll(t, rs[0].Error, `"redis-health"`, testVault, "another run created it first", "within waitTimeout 2s", "read secret-bundles")
	if took < wait || took > wait+3*time.Second || f.Creates != 0 {
		t.Fatalf("took %s, %d creates", took, f.Creates)
	}
}

// TestVaultUnlistableGeneratesNothing: a principal that may neither read
// nor list the vault's secrets gets 404 NotAuthorizedOrNotFound for every
// secret, as if all were missing; the plan asks the vault's listing before
// generating, which is refused too: the run fails naming the vault and the
// policy, CreateSecret is never called and nothing is generated.
func TestVaultUnlistableGeneratesNothing(t *testing.T) {
	s, f, _ := newTest(t, 5*time.Second)
	f.Put("pg-health-admin", "existing-admin-password-0123456789")
	f.DenyRead, f.DenyList = true, true
	names := map[string]string{"pg-health-admin": "postgres[0].admin.password", "redis-health": "redis[0].password"}
	creds, rs, all := applyRun(s, names, 5*time.Second)
	if len(rs) != 1 || rs[0].Status != reconcile.Failed {
		t.Fatalf("want the plan to fail, got %s", all)
	}
	t.Logf("the run failed: %s", rs[0].Error)
	wantAll(t, rs[0].Error, testVault, `"pg-health-admin"`, `"redis-health"`, "404 NotAuthorizedOrNotFound",
		"may neither list nor read", "nothing was generated", "Allow group", "manage secret-family", "target.vault.id = '"+testVault+"'")
	if f.CreateCalls != 0 || f.Lists != 1 {
		t.Fatalf("%d CreateSecret calls, %d ListSecrets calls", f.CreateCalls, f.Lists)
	}
	if len(creds.Resolved()) != 0 {
		t.Fatalf("%d credentials resolved", len(creds.Resolved()))
	}
}

// TestVaultListableButUnreadableGeneratesNothing: a principal that may list but
// not read sees the existing secret listed ACTIVE: the run says so with the
// read policy, and generates nothing.
func TestVaultListableButUnreadableGeneratesNothing(t *testing.T) {
	s, f, _ := newTest(t, 5*time.Second)
	f.Put("pg-health-admin", "existing-admin-password-0123456789")
	f.DenyRead = true
	_, rs, all := applyRun(s, map[string]string{"pg-health-admin": "postgres[0].admin.password"}, 5*time.Second)
	if len(rs) != 1 || rs[0].Status != reconcile.Failed {
		t.Fatalf("want the plan to fail, got %s", all)
	}
	t.Logf("the run failed: %s", rs[0].Error)
	wantAll(t, rs[0].Error, `"pg-health-admin"`, testVault, "exists", "ACTIVE", "may not read its content", "read secret-bundles")
	if f.CreateCalls != 0 {
		t.Fatalf("%d CreateSecret calls", f.CreateCalls)
	}
	// Not so when it can be read now: another run created it between the
	// plan's read and the listing, and Create will adopt its value.
	f.Do(func(srv *ocitest.Server) { srv.DenyRead = false })
	if err := s.ConfirmMissing(context.Background(), []string{"pg-health-admin"}); err != nil {
		t.Fatalf("a secret readable now: %v", err)
	}
}

// TestVaultConfirmMissingListsOncePerRun: however many secrets are missing, a
// run lists the vault once (every page of it), not once per secret; a run
// with nothing missing lists nothing.
func TestVaultConfirmMissingListsOncePerRun(t *testing.T) {
	s, f, _ := newTest(t, 5*time.Second)
	f.Put("unrelated-a", "unrelated-value-a-0123456789")
	f.Put("unrelated-b", "unrelated-value-b-0123456789")
	f.PageSize = 1
	names := map[string]string{"a": "x[0].password", "b": "x[1].password", "c": "x[2].password"}
	_, rs, all := applyRun(s, names, 5*time.Second)
	for _, r := range rs {
		if r.Status != reconcile.Applied {
			t.Fatalf("first run: %s", all)
		}
	}
	// Two secrets, one per page: two requests of one listing.
	if f.Creates != 3 || f.Lists != 2 {
		t.Fatalf("%d creates, %d ListSecrets requests; want 3 and 2", f.Creates, f.Lists)
	}
	if _, _, all := applyRun(s, names, 5*time.Second); f.Lists != 2 || f.Creates != 3 {
		t.Fatalf("second run listed or created: %s", all)
	}
}

package ocivault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/vault"

	"github.com/health-data-ai/bootstrap/internal/secrets"
)

// This file is about who holds a secret name. OCI answers a read by name
// with the same 404 NotAuthorizedOrNotFound for a missing secret, one this
// principal may not read, one being deleted and one whose first version is
// still CREATING; only a listing of the vault tells them apart. Names are
// unique per vault, and a secret being deleted keeps its name until the
// deletion completes (30 days by default), so such a name can neither be
// created nor adopted.

// ConfirmMissing tells "not found" from "not allowed" before anything is
// generated, with one listing of the vault by the same principal (only the
// name when one secret is missing, else every page of the vault, so a run
// costs one listing however many are missing). The listing covers the
// compartment secrets are created in. A refused listing stops the run
// naming the vault and the policy; a listed secret this principal still
// cannot read, or one being deleted, stops it naming the secret; one still
// CREATING, or readable now, is another run's, which Create adopts.
// Otherwise the names are missing for sure.
func (s *Source) ConfirmMissing(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	_, vc, err := s.clients(ctx)
	if err != nil {
		return err
	}
	if s.cfg.CompartmentID == "" {
		return fmt.Errorf("%s: secrets.source.ocivault.compartmentId is needed to confirm that %s are missing before generating them", s, quoteAll(names))
	}
	lctx, cancel := context.WithTimeout(ctx, s.wait+5*time.Second)
	defer cancel()
	filter := ""
	if len(names) == 1 {
		filter = names[0]
	}
	items, err := s.listSecrets(lctx, vc, filter)
	if err != nil {
		return s.explainList(names, err)
	}
	holder := map[string]vault.SecretSummary{}
	for _, it := range items {
		if it.SecretName != nil && rank(it.LifecycleState) > rank(holder[*it.SecretName].LifecycleState) {
			holder[*it.SecretName] = it
		}
	}
	var problems []string
	for _, n := range names {
		h, ok := holder[n]
		switch st := h.LifecycleState; {
		case !ok || st == vault.SecretSummaryLifecycleStateCreating:
			// Missing; or another run is creating it, and Create adopts
			// that run's value.
		case deleting(st):
			problems = append(problems, fmt.Sprintf("secret %q: %s", n, reserved(n, h)))
		case st == vault.SecretSummaryLifecycleStateActive || st == vault.SecretSummaryLifecycleStateUpdating:
			// Read it once more: another run may have created it since
			// the plan read it, and Create then adopts that run's value.
			_, err := s.Get(lctx, n)
			switch {
			case err == nil:
				s.log.Info("secret created by another run since it was read", "secret", n)
			case errors.Is(err, secrets.ErrNotFound):
				problems = append(problems, fmt.Sprintf("secret %q exists (%s, %s) but this principal may not read its content; grant: %s",
					n, idOf(h), st, s.policy("read secret-bundles")))
			default:
				problems = append(problems, err.Error())
			}
		default:
			problems = append(problems, fmt.Sprintf("secret %q: the name is held by secret %s in state %s; run again once it is ACTIVE, or choose another name", n, idOf(h), st))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: nothing was generated: %s", s, strings.Join(problems, "; "))
	}
	s.log.Debug("secrets confirmed missing", "secrets", names, "listed", len(items))
	return nil
}

// listSecrets lists the vault's secrets in the configured compartment —
// those named name, or all when name is "" — every page of them.
func (s *Source) listSecrets(ctx context.Context, vc *vault.VaultsClient, name string) ([]vault.SecretSummary, error) {
	req := vault.ListSecretsRequest{
		CompartmentId: common.String(s.cfg.CompartmentID),
		VaultId:       common.String(s.cfg.VaultID),
	}
	if name != "" {
		req.Name = common.String(name)
	}
	var out []vault.SecretSummary
	for {
		r, err := vc.ListSecrets(ctx, req)
		if err != nil {
			return nil, err
		}
		out = append(out, r.Items...)
		if r.OpcNextPage == nil || *r.OpcNextPage == "" {
			return out, nil
		}
		req.Page = r.OpcNextPage
	}
}

// explainList says why the vault could not be listed. OCI refuses a
// principal without the policy as it answers for a missing vault or
// compartment (404, or 401, NotAuthorizedOrNotFound), or with 403: the
// missing secrets may then exist unreadable, so nothing is generated.
func (s *Source) explainList(names []string, err error) error {
	what := fmt.Sprintf("%s: cannot confirm that %s are missing before generating them: list secrets in compartment %s", s, quoteAll(names), s.cfg.CompartmentID)
	se, ok := common.IsServiceError(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, common.DeadlineExceededByBackoff):
		return fmt.Errorf("%s: no answer within waitTimeout %s: %w", what, s.wait, err)
	case !ok:
		return fmt.Errorf("%s: %w", what, err)
	}
	code, status := se.GetCode(), se.GetHTTPStatusCode()
	base := fmt.Sprintf("%s: %d %s", what, status, code)
	switch {
	case status == http.StatusNotFound || status == http.StatusForbidden || status == http.StatusUnauthorized && code == "NotAuthorizedOrNotFound":
		return fmt.Errorf("%s: the vault or compartment does not exist, or this principal may neither list nor read its secrets; nothing was generated; to read, list and create secrets grant: %s",
			base, s.policy("manage secret-family"))
	case status == http.StatusUnauthorized:
		return fmt.Errorf("%s: the request signature was refused (check the auth mode %q, the key and the clock): %s", base, s.cfg.Auth, se.GetMessage())
	}
	return fmt.Errorf("%s: %s", base, se.GetMessage())
}

// nameTaken says whether CreateSecret was refused for its name: 409
// Conflict when a secret holds it, 400 InvalidParameter ("name already
// exists") when a secret being deleted holds it (see ocitest's create for
// where that is documented). A 409 IncorrectState or LockConflict is a busy
// resource the SDK has retried already, not a name.
func nameTaken(se common.ServiceError) bool {
	switch se.GetHTTPStatusCode() {
	case http.StatusConflict:
		return se.GetCode() != "IncorrectState" && se.GetCode() != "LockConflict"
	case http.StatusBadRequest:
		return se.GetCode() == "InvalidParameter"
	}
	return false
}

// taken handles a CreateSecret refused for its name; which secret holds it
// (one ListSecrets by name) decides. One being deleted cannot be adopted:
// the error names it and how to restore it. Any other is another writer's:
// ErrExists, once its value can be read. A 400 with no holder listed is an
// invalid parameter after all.
func (s *Source) taken(ctx context.Context, vc *vault.VaultsClient, name string, se common.ServiceError, cause error) error {
	lctx, cancel := context.WithTimeout(ctx, s.wait+5*time.Second)
	defer cancel()
	holders, lerr := s.listSecrets(lctx, vc, name)
	held := false
	for _, h := range holders {
		if h.SecretName == nil || *h.SecretName != name {
			continue
		}
		if deleting(h.LifecycleState) {
			return fmt.Errorf("create secret %q in %s: %d %s: %s", name, s, se.GetHTTPStatusCode(), se.GetCode(), reserved(name, h))
		}
		held = true
	}
	if se.GetHTTPStatusCode() == http.StatusBadRequest && !held {
		err := s.explain("create", name, cause)
		if lerr != nil {
			return fmt.Errorf("%w; if a secret of this name is being deleted, restore it with `oci vault secret cancel-secret-deletion --secret-id <its OCID>` or choose another name (listing the vault to tell failed: %s)", err, brief(lerr))
		}
		return err
	}
	if err := s.awaitWinner(ctx, name); err != nil {
		return err
	}
	return fmt.Errorf("create secret %q in %s: %w", name, s, secrets.ErrExists)
}

// awaitWinner waits, up to waitTimeout, until the secret another writer
// created can be read, so that the caller's read after ErrExists finds it:
// OCI answers 404 for its bundle while its first version is CREATING.
// Reads are retried after growing, jittered pauses.
func (s *Source) awaitWinner(ctx context.Context, name string) error {
	deadline := time.Now().Add(s.wait)
	for attempt := 1; ; attempt++ {
		// Reads run under the caller's context (bundle bounds each), not
		// one that ends with the wait: a read cut off by that deadline
		// would report the context's error instead of the vault's answer
		// (and the SDK's retry goroutine outlives such a call).
		_, err := s.Get(ctx, name)
		if err == nil || !errors.Is(err, secrets.ErrNotFound) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("create secret %q in %s: another run created it first, but its value could not be read within waitTimeout %s: %w", name, s, s.wait, err)
		}
		d := min(s.pollEvery<<min(attempt-1, 5), 10*time.Second)
		d = min(d/2+rand.N(d/2+1), left)
		s.log.Info("waiting for vault secret another run created", "secret", name, "attempt", attempt, "retryIn", d.Round(time.Millisecond).String())
		if err := sleep(ctx, d); err != nil {
			return fmt.Errorf("create secret %q in %s: %w", name, s, err)
		}
	}
}

// sleep waits d, or until ctx ends (its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// deleting says whether a secret in state st is being, or has been,
// deleted: it keeps its name and its content cannot be read.
func deleting(st vault.SecretSummaryLifecycleStateEnum) bool {
	switch st {
	case vault.SecretSummaryLifecycleStatePendingDeletion, vault.SecretSummaryLifecycleStateSchedulingDeletion,
		vault.SecretSummaryLifecycleStateDeleting, vault.SecretSummaryLifecycleStateDeleted:
		return true
	}
	return false
}

// rank orders the secrets listed under one name by what they say about
// it: a live secret first, then one being deleted, then anything else; one
// still CREATING (another run's) and none at all last.
func rank(st vault.SecretSummaryLifecycleStateEnum) int {
	switch {
	case st == "":
		return 0
	case st == vault.SecretSummaryLifecycleStateCreating:
		return 1
	case st == vault.SecretSummaryLifecycleStateActive || st == vault.SecretSummaryLifecycleStateUpdating:
		return 4
	case deleting(st):
		return 3
	}
	return 2
}

// reserved says which secret being deleted holds name, and the remedy.
func reserved(name string, h vault.SecretSummary) string {
	id := idOf(h)
	remedy := fmt.Sprintf("restore it with `oci vault secret cancel-secret-deletion --secret-id %s`, or choose another name", id)
	if h.LifecycleState == vault.SecretSummaryLifecycleStateDeleting || h.LifecycleState == vault.SecretSummaryLifecycleStateDeleted {
		remedy = "its deletion can no longer be cancelled (cancel-secret-deletion works only while it is pending): choose another name"
	}
	return fmt.Sprintf("the name %q is held by secret %s in state %s, which cannot be adopted; %s", name, id, h.LifecycleState, remedy)
}

func idOf(h vault.SecretSummary) string {
	if h.Id == nil {
		return "<its OCID>"
	}
	return *h.Id
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// brief is an SDK error as its status and code, without the SDK's
// multi-line text.
func brief(err error) string {
	if se, ok := common.IsServiceError(err); ok {
		return fmt.Sprintf("%d %s", se.GetHTTPStatusCode(), se.GetCode())
	}
	return err.Error()
}

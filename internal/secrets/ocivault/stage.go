package ocivault

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	ocisecrets "github.com/oracle/oci-go-sdk/v65/secrets"
	"github.com/oracle/oci-go-sdk/v65/vault"

	"github.com/health-data-ai/bootstrap/internal/credential"
	"github.com/health-data-ai/bootstrap/internal/rotate"
	"github.com/health-data-ai/bootstrap/internal/secrets"
)

// OCI Vault's side of a rotation (DESIGN.md "Rotation"): the next value is
// a new secret version in stage PENDING; promoting makes it CURRENT, and
// OCI moves the version that was CURRENT to PREVIOUS. OCI keeps no time of
// promotion, so Promote first records it in the secret's metadata, keyed
// by the version it is about to promote: a run killed between the two
// updates leaves metadata naming a version that is not CURRENT, which
// Promoted ignores and the next Promote rewrites. Updates carry the etag
// read just before (If-Match), so a concurrent writer, or a retry of an
// update whose answer was lost, is noticed rather than applied twice.

var (
	_ rotate.Vault       = (*Source)(nil)
	_ rotate.Snapshotter = (*Source)(nil)
)

// Metadata keys Promote writes; other keys of the secret's metadata are kept.
const (
	metaPromotedVersion = "bootstrapPromotedVersion"
	metaPromotedAt      = "bootstrapPromotedAt"
)

// Pending reads the version in stage PENDING; none is ErrNotFound.
func (s *Source) Pending(ctx context.Context, name string) (credential.Credential, error) {
	return s.inStage(ctx, name, ocisecrets.GetSecretBundleByNameStagePending, "pending")
}

// inStage reads the version of name in a stage only some secrets have
// (PENDING, PREVIOUS): none, or no usable value, is ErrNotFound.
func (s *Source) inStage(ctx context.Context, name string, stage ocisecrets.GetSecretBundleByNameStageEnum, what string) (credential.Credential, error) {
	b, err := s.bundle(ctx, name, stage)
	if isNotFound(err) {
		return credential.Credential{}, fmt.Errorf("%s version of secret %q in %s: %w", what, name, s, secrets.ErrNotFound)
	}
	if err != nil {
		return credential.Credential{}, s.explain("read "+what+" version of", name, err)
	}
	v, err := decode(b)
	if err != nil || len(v) == 0 {
		return credential.Credential{}, fmt.Errorf("%s version of secret %q in %s: not a usable value: %w", what, name, s, secrets.ErrNotFound)
	}
	return credential.New(string(v)), nil
}

// Stage adds value as a new version in stage PENDING (one staged before
// loses the stage) and waits until it can be read as PENDING.
func (s *Source) Stage(ctx context.Context, name string, value credential.Credential) error {
	const op = "stage a new version of"
	cur, err := s.bundle(ctx, name, ocisecrets.GetSecretBundleByNameStageCurrent)
	if err != nil {
		return s.explain("read", name, err)
	}
	_, vc, err := s.clients(ctx)
	if err != nil {
		return err
	}
	sec, err := vc.GetSecret(ctx, vault.GetSecretRequest{SecretId: cur.SecretId})
	if err != nil {
		return s.explain(op, name, err)
	}
	_, err = vc.UpdateSecret(ctx, vault.UpdateSecretRequest{
		SecretId: cur.SecretId,
		IfMatch:  sec.Etag,
		UpdateSecretDetails: vault.UpdateSecretDetails{SecretContent: vault.Base64SecretContentDetails{
			Content: common.String(base64.StdEncoding.EncodeToString([]byte(value.Reveal()))),
			Stage:   vault.SecretContentDetailsStagePending,
		}},
	})
	if err != nil && !isPreconditionFailed(err) {
		return s.explain(op, name, err)
	}
	// A 412 is our own update, retried by the SDK after its answer was
	// lost, or another writer's: which one shows once OCI has created the
	// version, so that path waits for the secret to settle too.
	return s.awaitPending(ctx, name, value, cur.SecretId, err != nil)
}

// awaitPending polls until the PENDING version holds value: OCI creates a
// version asynchronously while the secret is UPDATING. When contended (our
// update was refused with 412), a PENDING value not ours once the secret is
// no longer UPDATING is another writer's, and the run fails saying so.
func (s *Source) awaitPending(ctx context.Context, name string, value credential.Credential, id *string, contended bool) error {
	const op = "stage a new version of"
	// As in awaitWinner, reads run under the caller's context and the
	// wait is a deadline of our own.
	deadline := time.Now().Add(s.wait)
	for {
		// The state is read before PENDING: a secret already settled then
		// shows every update made before, ours included.
		settled := false
		if contended {
			_, vc, err := s.clients(ctx)
			if err != nil {
				return err
			}
			sec, err := vc.GetSecret(ctx, vault.GetSecretRequest{SecretId: id})
			if err != nil {
				return s.explain(op, name, err)
			}
			settled = sec.LifecycleState != vault.SecretLifecycleStateUpdating
		}
		p, err := s.Pending(ctx, name)
		switch {
		case err == nil && p.Equal(value):
			return nil
		case err != nil && !errors.Is(err, secrets.ErrNotFound):
			return err
		case settled:
			return fmt.Errorf("%s secret %q in %s: the secret changed while it was being staged (another bootstrap rotating it?); run again", op, name, s)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s secret %q in %s: not readable as PENDING within waitTimeout %s", op, name, s, s.wait)
		}
		if err := sleep(ctx, min(s.pollEvery, left)); err != nil {
			return fmt.Errorf("%s secret %q in %s: %w", op, name, s, err)
		}
	}
}

// Promote makes the PENDING version CURRENT, recording when in the
// secret's metadata first; with nothing pending it does nothing.
func (s *Source) Promote(ctx context.Context, name string) error {
	const op = "promote the pending version of"
	p, err := s.bundle(ctx, name, ocisecrets.GetSecretBundleByNameStagePending)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return s.explain("read pending version of", name, err)
	}
	_, vc, err := s.clients(ctx)
	if err != nil {
		return err
	}
	sec, err := vc.GetSecret(ctx, vault.GetSecretRequest{SecretId: p.SecretId})
	if err != nil {
		return s.explain(op, name, err)
	}
	md := maps.Clone(sec.Metadata)
	if md == nil {
		md = map[string]any{}
	}
	n := *p.VersionNumber
	md[metaPromotedVersion] = strconv.FormatInt(n, 10)
	md[metaPromotedAt] = time.Now().UTC().Format(time.RFC3339Nano)
	up, err := vc.UpdateSecret(ctx, vault.UpdateSecretRequest{SecretId: p.SecretId, IfMatch: sec.Etag,
		UpdateSecretDetails: vault.UpdateSecretDetails{Metadata: md}})
	if err == nil {
		// The API refuses content, version number and rules in one update
		// and says nothing of metadata beside a version number: the
		// promotion is an update of its own. A 409 while the secret is
		// still UPDATING is retried by the policy.
		_, err = vc.UpdateSecret(ctx, vault.UpdateSecretRequest{SecretId: p.SecretId, IfMatch: up.Etag,
			UpdateSecretDetails: vault.UpdateSecretDetails{CurrentVersionNumber: common.Int64(n)}})
	}
	if err != nil && !isPreconditionFailed(err) {
		return s.explain(op, name, err)
	}
	// On 412 too: the etag moved, by another writer or by our own update
	// retried after its answer was lost; what is CURRENT now tells which.
	wctx, cancel := context.WithTimeout(ctx, s.wait+5*time.Second)
	defer cancel()
	if err := s.waitActive(wctx, vc, op, name, *p.SecretId); err != nil {
		return err
	}
	cur, err := s.bundle(ctx, name, ocisecrets.GetSecretBundleByNameStageCurrent)
	if err != nil {
		return s.explain("read", name, err)
	}
	if *cur.VersionNumber != n {
		return fmt.Errorf("%s secret %q in %s: version %d is not CURRENT: the secret changed while it was being promoted (another bootstrap rotating it?); run again", op, name, s, n)
	}
	return nil
}

// Promoted is when the CURRENT version became current: the time Promote
// recorded for it, else (a version made current by a create or by hand)
// when the version was created.
func (s *Source) Promoted(ctx context.Context, name string) (time.Time, error) {
	b, err := s.bundle(ctx, name, ocisecrets.GetSecretBundleByNameStageCurrent)
	if err != nil {
		return time.Time{}, s.explain("read", name, err)
	}
	return s.promoted(ctx, name, b)
}

// promoted is Promoted from the CURRENT bundle b, already read.
func (s *Source) promoted(ctx context.Context, name string, b ocisecrets.SecretBundle) (time.Time, error) {
	n := *b.VersionNumber
	if at, ok := promotedAt(b.Metadata, n); ok {
		return at, nil
	}
	// The bundle's metadata may be the version's own; the secret's is
	// where Promote writes.
	_, vc, err := s.clients(ctx)
	if err != nil {
		return time.Time{}, err
	}
	sec, err := vc.GetSecret(ctx, vault.GetSecretRequest{SecretId: b.SecretId})
	if err != nil {
		return time.Time{}, s.explain("read", name, err)
	}
	if at, ok := promotedAt(sec.Metadata, n); ok {
		return at, nil
	}
	if b.TimeCreated == nil {
		return time.Time{}, fmt.Errorf("read secret %q in %s: version %d has no creation time", name, s, n)
	}
	return b.TimeCreated.Time, nil
}

// Snapshot reads the CURRENT, PENDING and PREVIOUS versions at once, and
// the promotion time from the CURRENT one: one round trip where Get,
// Pending, Previous and Promoted take four or five in a row.
func (s *Source) Snapshot(ctx context.Context, name string) (rotate.Snapshot, error) {
	var (
		snap               rotate.Snapshot
		cur                ocisecrets.SecretBundle
		curErr, pErr, qErr error
		wg                 sync.WaitGroup
	)
	wg.Go(func() { cur, curErr = s.bundle(ctx, name, ocisecrets.GetSecretBundleByNameStageCurrent) })
	wg.Go(func() { snap.Pending, pErr = s.Pending(ctx, name) })
	wg.Go(func() { snap.Previous, qErr = s.Previous(ctx, name) })
	wg.Wait()
	if curErr != nil {
		return snap, s.explain("read", name, curErr)
	}
	var err error
	if snap.Current, err = s.current(name, cur); err != nil {
		return snap, err
	}
	for _, r := range []struct {
		err error
		has *bool
	}{{pErr, &snap.HasPending}, {qErr, &snap.HasPrevious}} {
		if r.err != nil && !errors.Is(r.err, secrets.ErrNotFound) {
			return snap, r.err
		}
		*r.has = r.err == nil
	}
	snap.Promoted, err = s.promoted(ctx, name, cur)
	return snap, err
}

// promotedAt is the promotion time md records for version n.
func promotedAt(md map[string]any, n int64) (time.Time, bool) {
	if v, _ := md[metaPromotedVersion].(string); v != strconv.FormatInt(n, 10) {
		return time.Time{}, false
	}
	at, _ := md[metaPromotedAt].(string)
	t, err := time.Parse(time.RFC3339Nano, at)
	return t, err == nil
}

// bundle reads the version of name in stage; errors are the SDK's.
func (s *Source) bundle(ctx context.Context, name string, stage ocisecrets.GetSecretBundleByNameStageEnum) (ocisecrets.SecretBundle, error) {
	rc, _, err := s.clients(ctx)
	if err != nil {
		return ocisecrets.SecretBundle{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.wait+5*time.Second)
	defer cancel()
	resp, err := rc.GetSecretBundleByName(ctx, ocisecrets.GetSecretBundleByNameRequest{
		SecretName: common.String(name),
		VaultId:    common.String(s.cfg.VaultID),
		Stage:      stage,
	})
	return resp.SecretBundle, err
}

// decode returns a bundle's BASE64 content. Its errors name no content.
func decode(b ocisecrets.SecretBundle) ([]byte, error) {
	c, ok := b.SecretBundleContent.(ocisecrets.Base64SecretBundleContentDetails)
	if !ok || c.Content == nil {
		return nil, fmt.Errorf("content is not BASE64")
	}
	v, err := base64.StdEncoding.DecodeString(*c.Content)
	if err != nil {
		// The decoder's error names an offset, never content.
		return nil, fmt.Errorf("content is not valid base64")
	}
	return v, nil
}

func isNotFound(err error) bool {
	se, ok := common.IsServiceError(err)
	return ok && se.GetHTTPStatusCode() == http.StatusNotFound
}

func isPreconditionFailed(err error) bool {
	se, ok := common.IsServiceError(err)
	return ok && se.GetHTTPStatusCode() == http.StatusPreconditionFailed
}

package ocitest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A secret's versions and their rotation stages, as the Vault API
// documents them (SecretContentDetails, UpdateSecretDetails): a new secret
// has version 1, CURRENT and LATEST. UpdateSecret with content adds a
// version that is LATEST and, by its stage, CURRENT or PENDING; with
// currentVersionNumber it makes that version CURRENT. The version that was
// CURRENT becomes PREVIOUS, the one that was PREVIOUS DEPRECATED; a new
// PENDING version replaces the one pending before, which becomes
// DEPRECATED. Content and currentVersionNumber in one request are refused,
// as the API says they "can't be specified at the same time".

type fakeVersion struct {
	number  int64
	value   string
	stages  []string
	created time.Time
}

func (v *fakeVersion) has(stage string) bool { return slices.Contains(v.stages, stage) }

func (v *fakeVersion) drop(stage string) {
	v.stages = slices.DeleteFunc(v.stages, func(s string) bool { return s == stage })
	if len(v.stages) == 0 {
		v.stages = []string{"DEPRECATED"}
	}
}

func (v *fakeVersion) add(stage string) {
	v.stages = slices.DeleteFunc(v.stages, func(s string) bool { return s == "DEPRECATED" })
	if !v.has(stage) {
		v.stages = append(v.stages, stage)
	}
}

// stage returns the version holding stage, nil if none does.
func (s *fakeSecret) stage(stage string) *fakeVersion {
	for _, v := range s.versions {
		if v.has(stage) {
			return v
		}
	}
	return nil
}

func (s *fakeSecret) value() string { return s.stage("CURRENT").value }

// addVersion stores value as a new version in stage ("CURRENT" or
// "PENDING").
func (s *fakeSecret) addVersion(value, stage string) *fakeVersion {
	v := &fakeVersion{number: int64(len(s.versions) + 1), value: value, created: time.Now().UTC()}
	if old := s.stage("LATEST"); old != nil {
		old.drop("LATEST")
	}
	v.add("LATEST")
	s.versions = append(s.versions, v)
	if stage == "PENDING" {
		if old := s.stage("PENDING"); old != nil {
			old.drop("PENDING")
		}
		v.add("PENDING")
	} else {
		s.makeCurrent(v)
	}
	return v
}

// makeCurrent makes v CURRENT, the current version PREVIOUS.
func (s *fakeSecret) makeCurrent(v *fakeVersion) {
	cur := s.stage("CURRENT")
	if cur == v {
		return
	}
	if cur != nil {
		if prev := s.stage("PREVIOUS"); prev != nil {
			prev.drop("PREVIOUS")
		}
		cur.drop("CURRENT")
		cur.add("PREVIOUS")
	}
	v.drop("PENDING")
	v.add("CURRENT")
}

// Stages returns each version's stages of the named secret, by version
// number from 1.
func (f *Server) Stages(name string) [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.secrets[name]
	if !ok {
		return nil
	}
	var out [][]string
	for _, v := range s.versions {
		st := slices.Clone(v.stages)
		slices.Sort(st)
		out = append(out, st)
	}
	return out
}

// SetMetadata replaces the named secret's metadata, as an update that
// sets only metadata does.
func (f *Server) SetMetadata(name string, md map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	s.metadata = md
	s.etag++
}

// Metadata returns the named secret's metadata.
func (f *Server) Metadata(name string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.secrets[name]; ok {
		return s.metadata
	}
	return nil
}

// secretJSON is the Secret resource GetSecret and UpdateSecret answer.
func (f *Server) secretJSON(w http.ResponseWriter, s *fakeSecret, state string) {
	w.Header().Set("etag", strconv.Itoa(s.etag))
	body := map[string]any{"id": s.id, "secretName": s.name, "compartmentId": "c", "vaultId": VaultID,
		"lifecycleState": state, "timeCreated": s.created.Format(time.RFC3339)}
	if cur := s.stage("CURRENT"); cur != nil {
		body["currentVersionNumber"] = cur.number
	}
	if s.metadata != nil {
		body["metadata"] = s.metadata
	}
	ociJSON(w, body)
}

// getSecret is GetSecret: a secret stays UPDATING for UpdatingPolls calls
// after each update.
func (f *Server) getSecret(w http.ResponseWriter, s *fakeSecret) {
	f.Reads++
	s.polls++
	state := f.state(s)
	if s.updating > 0 {
		s.updating--
		state = "UPDATING"
	}
	if s.creatingPending > 0 {
		state = "UPDATING"
	}
	f.secretJSON(w, s, state)
}

// update is UpdateSecret (PUT /20180608/secrets/{id}). An If-Match that is
// not the secret's etag is 412; an update while the secret is UPDATING is
// 409 IncorrectState, which the SDK retries.
func (f *Server) update(w http.ResponseWriter, r *http.Request, body []byte) {
	s, ok := f.byID[strings.TrimPrefix(r.URL.Path, "/20180608/secrets/")]
	if !ok {
		notAuthorizedOrNotFound(w)
		return
	}
	f.Updates++
	if v, ok := f.OtherStager[s.name]; ok {
		delete(f.OtherStager, s.name)
		s.addVersion(v, "PENDING")
		s.etag++
	}
	if s.updating > 0 {
		s.updating--
		ociError(w, http.StatusConflict, "IncorrectState", "the secret is UPDATING")
		return
	}
	if m := r.Header.Get("if-match"); m != "" && m != strconv.Itoa(s.etag) {
		ociError(w, http.StatusPreconditionFailed, "NoEtagMatch", "the resource's etag does not match")
		return
	}
	var in struct {
		CurrentVersionNumber *int64         `json:"currentVersionNumber"`
		Metadata             map[string]any `json:"metadata"`
		SecretContent        *struct {
			ContentType, Content, Stage string
		} `json:"secretContent"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		ociError(w, 400, "InvalidParameter", "bad update request")
		return
	}
	if in.SecretContent != nil && in.CurrentVersionNumber != nil {
		ociError(w, 400, "InvalidParameter", "secret content and currentVersionNumber cannot be updated together")
		return
	}
	switch {
	case in.SecretContent != nil:
		c := in.SecretContent
		v, err := base64.StdEncoding.DecodeString(c.Content)
		if c.ContentType != "BASE64" || c.Stage != "CURRENT" && c.Stage != "PENDING" || err != nil {
			ociError(w, 400, "InvalidParameter", "secretContent: BASE64 content, stage CURRENT or PENDING expected")
			return
		}
		s.addVersion(string(v), c.Stage)
	case in.CurrentVersionNumber != nil:
		n := *in.CurrentVersionNumber
		if n < 1 || n > int64(len(s.versions)) {
			ociError(w, 400, "InvalidParameter", "no version "+strconv.FormatInt(n, 10))
			return
		}
		s.makeCurrent(s.versions[n-1])
	}
	if in.Metadata != nil {
		s.metadata = in.Metadata
	}
	s.etag++
	s.updating = f.UpdatingPolls
	if in.SecretContent != nil && f.LoseUpdateAnswers > 0 {
		f.LoseUpdateAnswers--
		s.creatingPending = f.UnreadableReads
		ociError(w, http.StatusInternalServerError, "InternalServerError", "the answer was lost")
		return
	}
	f.secretJSON(w, s, "UPDATING")
}

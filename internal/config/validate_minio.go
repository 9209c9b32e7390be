package config

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

func (v *validator) minio() {
	instances := seen{}
	for i, m := range v.c.MinIO {
		p := v.instance("minio", i, m.Name, instances)
		v.hostPort(p+".endpoint", m.Endpoint)
		v.tls(p, m.TLS, false, "")
		v.ref(p+".accessKey", m.AccessKey, true)
		v.ref(p+".secretKey", m.SecretKey, true)
		bs := seen{}
		for j, b := range m.Buckets {
			v.bucket(fmt.Sprintf("%s.buckets[%d]", p, j), b, bs)
		}
	}
}

func (v *validator) bucket(bp string, b Bucket, bs seen) {
	if v.name(bp+".name", b.Name, bucketRe, 63, "S3 rules: 3-63 lower case letters, digits, '.' and '-'") {
		// The pattern cannot express these S3 rules; each gets its own message.
		switch {
		case len(b.Name) < 3:
			v.add(bp+".name", "invalid name %q: S3 bucket names have at least 3 characters", b.Name)
		case strings.Contains(b.Name, ".."):
			v.add(bp+".name", "invalid name %q: no two adjacent periods", b.Name)
		case net.ParseIP(b.Name) != nil:
			v.add(bp+".name", "invalid name %q: must not look like an IP address", b.Name)
		}
		v.dup(bs, b.Name, bp+".name", "bucket")
	}
	if b.ObjectLock && b.Versioning != nil && !*b.Versioning {
		v.add(bp+".versioning", "object lock requires versioning; remove versioning: false")
	}
	ls := seen{}
	for k, l := range b.Lifecycle {
		v.lifecycle(fmt.Sprintf("%s.lifecycle[%d]", bp, k), l, ls)
	}
	v.policy(bp+".policy", b.Policy)
	if len(b.Tags) > 50 {
		v.add(bp+".tags", "at most 50 tags, got %d", len(b.Tags))
	}
	for k, val := range b.Tags {
		if k == "" || len(k) > 128 || len(val) > 256 {
			v.add(join(bp+".tags", k), "tag keys are 1-128 characters and values at most 256")
		}
	}
	v.exclusive(bp, b)
}

// exclusive checks the settings named exclusive. Each must be declared:
// removing every undeclared entry of a setting left out of the config would
// contradict "a setting left out is left alone".
func (v *validator) exclusive(bp string, b Bucket) {
	declared := map[string]bool{"lifecycle": b.Lifecycle != nil, "tags": b.Tags != nil}
	hint := map[string]string{
		"lifecycle": "lifecycle is not declared: declare the rules to keep (lifecycle: [] removes every rule)",
		"tags":      "tags are not declared: declare the tags to keep (tags: {} removes every tag)",
	}
	es := seen{}
	for k, s := range b.Exclusive {
		p := fmt.Sprintf("%s.exclusive[%d]", bp, k)
		if !v.enum(p, s, "lifecycle", "tags") {
			continue
		}
		v.dup(es, s, p, "exclusive setting")
		if !declared[s] {
			v.add(p, "%s", hint[s])
		}
	}
}

func (v *validator) lifecycle(lp string, l LifecycleRule, ls seen) {
	if v.required(lp+".id", l.ID) {
		if len(l.ID) > 255 || strings.ContainsAny(l.ID, "\"';<>&") {
			v.add(lp+".id", "invalid rule id %q", l.ID)
		}
		v.dup(ls, l.ID, lp+".id", "lifecycle rule")
	}
	for f, d := range map[string]int{"expireDays": l.ExpireDays, "noncurrentExpireDays": l.NoncurrentExpireDays, "abortIncompleteUploadDays": l.AbortIncompleteUploadDays} {
		if d < 0 {
			v.add(lp+"."+f, "must be 0 or more days, got %d", d)
		}
	}
	if l.ExpireDays == 0 && l.NoncurrentExpireDays == 0 && l.AbortIncompleteUploadDays == 0 {
		v.add(lp, "needs at least one of expireDays, noncurrentExpireDays, abortIncompleteUploadDays")
	}
}

func (v *validator) policy(path string, p BucketPolicy) {
	switch {
	case p.bad != "":
		v.add(path, "%s", p.bad)
	case len(p.Document) > 0:
		var doc map[string]any
		if err := json.Unmarshal(p.Document, &doc); err != nil {
			v.add(path, "want a JSON object policy document")
		} else if _, ok := doc["Statement"]; !ok {
			v.add(path, "policy document has no Statement")
		}
	case p.Canned != "":
		v.enum(path, p.Canned, "private", "download", "upload", "public")
	}
}

package buckets

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7/pkg/policy"
)

// TestCannedPolicyMatchesMC proves the canned documents are the ones `mc
// anonymous set` writes: mc starts from {"Version":"2012-10-17"} and calls
// minio-go's policy.SetPolicy with the bucket and an empty prefix.
func TestCannedPolicyMatchesMC(t *testing.T) {
	for canned, mc := range map[string]policy.BucketPolicy{
		CannedDownload: policy.BucketPolicyReadOnly,
		CannedUpload:   policy.BucketPolicyWriteOnly,
		CannedPublic:   policy.BucketPolicyReadWrite,
	} {
		t.Run(canned, func(t *testing.T) {
			p := policy.BucketAccessPolicy{Version: "2012-10-17"}
			p.Statements = policy.SetPolicy(p.Statements, mc, "health-raw", "")
			want, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := CannedPolicy(canned, "health-raw")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("canned %s:\n got %s\nwant %s", canned, got, want)
			}
		})
	}
}

func TestCannedPolicy(t *testing.T) {
	tests := []struct {
		name string
		want string // "" means no policy
		err  bool
	}{
		{name: "private"},
		{name: "download", want: `{"Version":"2012-10-17","Statement":[{"Action":["s3:GetBucketLocation","s3:ListBucket"],"Effect":"Allow","Principal":{"AWS":["*"]},"Resource":["arn:aws:s3:::b1"],"Sid":""},{"Action":["s3:GetObject"],"Effect":"Allow","Principal":{"AWS":["*"]},"Resource":["arn:aws:s3:::b1/*"],"Sid":""}]}`},
		{name: "upload", want: `{"Version":"2012-10-17","Statement":[{"Action":["s3:GetBucketLocation","s3:ListBucketMultipartUploads"],"Effect":"Allow","Principal":{"AWS":["*"]},"Resource":["arn:aws:s3:::b1"],"Sid":""},{"Action":["s3:AbortMultipartUpload","s3:DeleteObject","s3:ListMultipartUploadParts","s3:PutObject"],"Effect":"Allow","Principal":{"AWS":["*"]},"Resource":["arn:aws:s3:::b1/*"],"Sid":""}]}`},
		{name: "public", want: `{"Version":"2012-10-17","Statement":[{"Action":["s3:GetBucketLocation","s3:ListBucket","s3:ListBucketMultipartUploads"],"Effect":"Allow","Principal":{"AWS":["*"]},"Resource":["arn:aws:s3:::b1"],"Sid":""},{"Action":["s3:AbortMultipartUpload","s3:DeleteObject","s3:GetObject","s3:ListMultipartUploadParts","s3:PutObject"],"Effect":"Allow","Principal":{"AWS":["*"]},"Resource":["arn:aws:s3:::b1/*"],"Sid":""}]}`},
		{name: "readonly", err: true},
		{name: "", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CannedPolicy(tt.name, "b1")
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestNormalizePolicy(t *testing.T) {
	download, _ := CannedPolicy(CannedDownload, "b1")
	tests := []struct {
		name  string
		a, b  string
		equal bool
	}{
		{
			name: "mc document vs hand-written: key order, single strings, Principal *, statement order",
			a:    string(download),
			b: `{"Statement":[
				{"Resource":"arn:aws:s3:::b1/*","Principal":"*","Effect":"Allow","Action":"s3:GetObject"},
				{"Effect":"Allow","Resource":"arn:aws:s3:::b1","Action":["s3:ListBucket","s3:GetBucketLocation"],"Principal":{"AWS":"*"}}
			],"Version":"2012-10-17"}`,
			equal: true,
		},
		{
			name:  "statement as an object vs a one-element list",
			a:     `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}}`,
			b:     `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::b1/*"]}]}`,
			equal: true,
		},
		{
			name:  "duplicate actions and statements",
			a:     `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:GetObject"],"Resource":"arn:aws:s3:::b1/*"},{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
			b:     `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
			equal: true,
		},
		{
			name:  "empty Sid and empty Condition are absent",
			a:     `{"Version":"2012-10-17","Statement":[{"Sid":"","Condition":{},"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
			b:     `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
			equal: true,
		},
		{
			name:  "condition values: scalar vs list, bool vs string, order",
			a:     `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b1/*","Condition":{"Bool":{"aws:SecureTransport":false},"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}}]}`,
			b:     `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b1/*","Condition":{"IpAddress":{"aws:SourceIp":["192.168.0.0/16","10.0.0.0/8"]},"Bool":{"aws:SecureTransport":"false"}}}]}`,
			equal: true,
		},
		{
			name: "different action",
			a:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
			b:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:PutObject","Resource":"arn:aws:s3:::b1/*"}]}`,
		},
		{
			name: "different effect",
			a:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
			b:    `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
		},
		{
			name: "a named principal is not everyone",
			a:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
			b:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
		},
		{
			name: "an extra statement",
			a:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
			b:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"},{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b1"}]}`,
		},
		{
			name: "version differs",
			a:    `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
			b:    `{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b1/*"}]}`,
		},
		{
			name:  "no policy: empty and null",
			a:     ``,
			b:     ` null `,
			equal: true,
		},
		{
			name: "no policy vs a policy",
			a:    ``,
			b:    string(download),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := normalizePolicy([]byte(tt.a))
			if err != nil {
				t.Fatalf("a: %v", err)
			}
			b, err := normalizePolicy([]byte(tt.b))
			if err != nil {
				t.Fatalf("b: %v", err)
			}
			if (a.Canonical == b.Canonical) != tt.equal {
				t.Errorf("equal = %v, want %v\na: %s\nb: %s", !tt.equal, tt.equal, a.Canonical, b.Canonical)
			}
		})
	}
}

func TestNormalizePolicyErrors(t *testing.T) {
	for _, doc := range []string{
		`{`,
		`[1,2]`,
		`{"Statement":"x"}`,
		`{"Statement":[1]}`,
		`{"Statement":[{"Action":{"a":1}}]}`,
		`{"Statement":[{"Principal":"someone"}]}`,
		`{"Statement":[{"Condition":"x"}]}`,
	} {
		if _, err := normalizePolicy([]byte(doc)); err == nil {
			t.Errorf("normalizePolicy(%s): no error", doc)
		}
	}
}

func TestPolicyDiff(t *testing.T) {
	download, _ := CannedPolicy(CannedDownload, "b1")
	public, _ := CannedPolicy(CannedPublic, "b1")
	d, _ := normalizePolicy(download)
	p, _ := normalizePolicy(public)
	got := policyDiff(p, d)
	for _, want := range []string{"remove [", "add [", "Allow AWS:* s3:GetObject on arn:aws:s3:::b1/*", "s3:PutObject"} {
		if !strings.Contains(got, want) {
			t.Errorf("policyDiff = %q, want it to contain %q", got, want)
		}
	}
	if got := policyDiff(normalPolicy{}, d); got != "no policy" {
		t.Errorf("policyDiff from none = %q", got)
	}
}

package benchtest

import (
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/minio/minio-go/v7/pkg/signer"
)

// emptySHA256 is the SHA-256 of an empty payload, which every request of
// S3Client signs.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// S3Client is the S3 baseline: bare SigV4-signed requests (minio-go's
// signer, nothing else of it) from one keep-alive HTTP client, one at a
// time, with no retries, no region lookups and no response parsing.
type S3Client struct {
	Endpoint, AccessKey, SecretKey string

	hc *http.Client
}

// NewS3Client returns a client for the plain-HTTP endpoint host:port.
func NewS3Client(endpoint, accessKey, secretKey string) *S3Client {
	return &S3Client{Endpoint: endpoint, AccessKey: accessKey, SecretKey: secretKey,
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
}

// Do sends one signed request without a body and reads the answer, which
// must be 2xx.
func (c *S3Client) Do(method, path string) error {
	_, err := c.do(method, path)
	return err
}

func (c *S3Client) do(method, path string) (int, error) {
	req, err := http.NewRequest(method, "http://"+c.Endpoint+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	req = signer.SignV4(*req, c.AccessKey, c.SecretKey, "", "us-east-1")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, body)
	}
	return resp.StatusCode, nil
}

// CreateBuckets sends what a cold apply of plain buckets sends: one
// ListBuckets, then a PUT for each bucket.
func (c *S3Client) CreateBuckets(names []string) error {
	if err := c.Do(http.MethodGet, "/"); err != nil {
		return err
	}
	for _, n := range names {
		if err := c.Do(http.MethodPut, "/"+n); err != nil {
			return err
		}
	}
	return nil
}

// RemoveBuckets deletes empty buckets, eight requests at a time; one
// already gone is no error.
func (c *S3Client) RemoveBuckets(names []string) error {
	work := make(chan string)
	errs := make(chan error, len(names))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := range work {
				if code, err := c.do(http.MethodDelete, "/"+n); err != nil && code != http.StatusNotFound {
					errs <- err
				}
			}
		})
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs
}

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/health-data-ai/bootstrap/internal/testenv"
)

var (
	imageOnce sync.Once
	imageRef  string
	imageErr  error
)

// bootstrapImage builds the bootstrap image for this machine's platform with
// the project's own builder (cmd/image: the Dockerfile's final stage on the
// offline base), imports it into the node's containerd and returns its
// reference. Pods run it with imagePullPolicy Never: nothing is pulled.
func bootstrapImage(t *testing.T) string {
	t.Helper()
	ctr := testenv.Getenv("BOOTSTRAP_TEST_NODE_CTR")
	sock := testenv.Getenv("BOOTSTRAP_TEST_NODE_CONTAINERD")
	if ctr == "" || sock == "" {
		testenv.Missing(t, "the node's containerd (scripts/testenv.sh up node)")
	}
	imageOnce.Do(func() {
		dir, err := os.MkdirTemp("", "e2e-image-")
		if err != nil {
			imageErr = err
			return
		}
		defer os.RemoveAll(dir)
		ref := "localhost/bootstrap:" + testenv.Unique("e2e-")
		root, _ := filepath.Abs("..")
		build := exec.Command("go", "run", "./cmd/image", "--platforms", "linux/"+runtime.GOARCH, "--version", "e2e",
			"--name", ref, "--out", filepath.Join(dir, "layout"), "--tar", filepath.Join(dir, "image.tar"))
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			imageErr = &cmdError{"go run ./cmd/image", err, out}
			return
		}
		imp := exec.Command(ctr, "--address", sock, "-n", "k8s.io", "images", "import", filepath.Join(dir, "image.tar"))
		if out, err := imp.CombinedOutput(); err != nil {
			imageErr = &cmdError{"ctr images import", err, out}
			return
		}
		imageRef = ref
	})
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return imageRef
}

type cmdError struct {
	what string
	err  error
	out  []byte
}

func (e *cmdError) Error() string { return e.what + ": " + e.err.Error() + "\n" + string(e.out) }

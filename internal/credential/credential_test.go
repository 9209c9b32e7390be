package credential

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestCredentialNeverPrints(t *testing.T) {
	c := New("hunter2-very-secret")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "password", c, "any", any(c))
	j, _ := json.Marshal(map[string]any{"c": c})
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %q %x", c, c, c, c, c, c), logs.String(), string(j), fmt.Errorf("wrap: %v", c).Error()} {
		if strings.Contains(s, c.Reveal()) {
			t.Fatalf("leaked: %s", s)
		}
	}
}

func TestResolvedGet(t *testing.T) {
	r := Resolved{"a": New("x"), "empty": New("")}
	if c, err := r.Get("a"); err != nil || c.Reveal() != "x" {
		t.Errorf("Get(a) = %v, %v", c, err)
	}
	for _, name := range []string{"missing", "empty"} {
		if _, err := r.Get(name); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("Get(%s): %v, want an error naming it", name, err)
		}
	}
}

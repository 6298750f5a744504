package config

import (
	"errors"
	"testing"
	"time"
)

// TestAuditRetention: 90 days by default; OPENINTERN_AUDIT_RETENTION takes
// days or a duration, 0 keeps records forever, and nonsense names the key.
func TestAuditRetention(t *testing.T) {
	if d := Default().AuditRetention; time.Duration(d) != 90*24*time.Hour {
		t.Fatalf("default retention %v, want 90 days", d)
	}
	for v, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "36h": 36 * time.Hour, "0": 0, "0d": 0} {
		c, err := Load("", env(map[string]string{"OPENINTERN_AUDIT_RETENTION": v}))
		if err == nil {
			err = c.Validate()
		}
		if err != nil || time.Duration(c.AuditRetention) != want {
			t.Errorf("%s: retention %v, err %v; want %v", v, c.AuditRetention, err, want)
		}
	}
	for _, v := range []string{"soon", "-1d", "1.5d", "10m", "-5h"} {
		c, err := Load("", env(map[string]string{"OPENINTERN_AUDIT_RETENTION": v}))
		if err == nil {
			err = c.Validate()
		}
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != "OPENINTERN_AUDIT_RETENTION" {
			t.Errorf("%s: err %v, want one naming OPENINTERN_AUDIT_RETENTION", v, err)
		}
	}
}

package pdp

import (
	"testing"
	"time"
)

func TestLogLimiterDemotesRepeats(t *testing.T) {
	var l logLimiter
	now := time.Unix(1_764_849_600, 0)
	for i := 0; i < logBurst; i++ {
		if ok, _ := l.allow("state.unavailable", now); !ok {
			t.Fatalf("line %d demoted, want the first %d at full level", i+1, logBurst)
		}
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.allow("state.unavailable", now); ok {
			t.Fatalf("line %d past the burst kept its level", logBurst+i+1)
		}
	}
	if ok, _ := l.allow("policy.error", now); !ok {
		t.Error("another key was demoted")
	}
	ok, suppressed := l.allow("state.unavailable", now.Add(logWindow))
	if !ok || suppressed != 5 {
		t.Errorf("next window: allowed %v, suppressed %d; want true, 5", ok, suppressed)
	}
}

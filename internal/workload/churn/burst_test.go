package churn

import (
	"strings"
	"testing"
)

func TestRunChildRejectsBadSpecs(t *testing.T) {
	for _, spec := range []string{"offheap", "offheap,burst-free-all,x", "offheap,no-such-case,100", "nope,burst-free-all,100"} {
		if code := runChild(spec); code == 0 {
			t.Errorf("runChild(%q) succeeded", spec)
		}
	}
}

// TestBurstInChild runs a small burst through the re-executed test binary,
// as the suite does with the offheap command.
func TestBurstInChild(t *testing.T) {
	if _, err := Burst("nope", "burst-free-all", 1000); err == nil || !strings.Contains(err.Error(), "unknown burst impl") {
		t.Fatalf("a bad impl in the child: %v", err)
	}
	if testing.Short() {
		t.Skip("a burst takes five seconds")
	}
	r, err := Burst("offheap", "burst-survivors", 50_000)
	if err != nil {
		t.Fatal(err)
	}
	if r.BaseMiB <= 0 || r.PeakMiB < r.BaseMiB || r.After5sMiB <= 0 || len(r.Series) < 50 {
		t.Fatalf("implausible burst result: %+v", r)
	}
	if len(r.Figures()) != 7 {
		t.Fatalf("figures: %v", r.Figures())
	}
}

package growth

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

const mib = 1 << 20

func TestBaselinesKeepData(t *testing.T) {
	grows := map[string]func([]byte, int) ([]byte, error){"copy": GrowCopy}
	if runtime.GOOS == "linux" {
		grows["mremap"] = GrowRemap
	}
	for name, grow := range grows {
		b, err := MapAnon(mib)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = byte(i*7 + 4)
		}
		want := bytes.Clone(b)
		nb, err := grow(b, 4*mib)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(nb) != 4*mib || !bytes.Equal(nb[:mib], want) {
			t.Fatalf("%s lost data", name)
		}
		if err := Unmap(nb); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMapAnonRejectsBadSizes(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := MapAnon(n); err == nil {
			t.Errorf("MapAnon(%d): no error", n)
		}
	}
}

func TestGrowOnceEveryImpl(t *testing.T) {
	for _, impl := range Impls {
		if runtime.GOOS != "linux" && impl == "mremap" {
			continue
		}
		d, err := GrowOnce(impl, mib)
		if err != nil || d <= 0 || d > time.Minute {
			t.Fatalf("GrowOnce(%s): %v, %v", impl, d, err)
		}
	}
	if _, err := NewGrower("nope", mib); err == nil {
		t.Fatal("unknown impl accepted")
	}
}

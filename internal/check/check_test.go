package check

import "testing"

func TestFill(t *testing.T) {
	b := []byte{1, 2, 3}
	Fill(b)
	want := byte(1)
	if On {
		want = Poison
	}
	if b[0] != want || b[2] != want && On {
		t.Fatalf("Fill with On=%v left %v", On, b)
	}
}

func TestInvariant(t *testing.T) {
	defer func() {
		r := recover()
		if On && r == nil {
			t.Fatal("broken invariant did not panic in the checked build")
		}
		if !On && r != nil {
			t.Fatalf("normal build panicked: %v", r)
		}
	}()
	Invariant(true, "never")
	Invariant(false, "broken %d", 1)
}

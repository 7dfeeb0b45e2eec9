package fuzzops

import "testing"

func TestReader(t *testing.T) {
	r := New([]byte{7, 200, 1, 2, 9})
	if !r.More() || r.Len() != 5 {
		t.Fatalf("fresh reader: More %v, Len %d", r.More(), r.Len())
	}
	if got := r.Intn(4); got != 3 {
		t.Fatalf("Intn(4) of 7 = %d", got)
	}
	if got := r.Byte(); got != 200 {
		t.Fatalf("Byte = %d, want 200", got)
	}
	if got := r.Uint16(); got != 1<<8|2 {
		t.Fatalf("Uint16 = %d, want 258", got)
	}
	if got := r.Uint16(); got != 9<<8 { // the second byte is past the end
		t.Fatalf("Uint16 at the end = %d, want 2304", got)
	}
	if r.More() || r.Len() != 0 || r.Byte() != 0 || r.Intn(3) != 0 {
		t.Fatal("a used-up reader does not return zeros")
	}
}

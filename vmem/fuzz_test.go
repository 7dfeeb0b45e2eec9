package vmem

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzRegion runs random operation sequences on a Region and checks it against
// a model: a plain byte slice of the ready prefix, where released pages read
// back as zero.
func FuzzRegion(f *testing.F) {
	f.Add([]byte{0, 4, 1, 9, 200, 3, 1, 1, 2, 0, 40, 4, 2})
	f.Add([]byte{0, 32, 1, 0, 1, 1, 31, 255, 3, 0, 32, 2, 5, 2})
	f.Add([]byte{0, 1, 0, 33, 4, 0, 3, 2, 1, 1, 0, 5, 0, 2})
	const pages = 32
	p := PageSize()
	f.Fuzz(func(t *testing.T, ops []byte) {
		r, err := Reserve(pages*p, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var model []byte
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			v := int(ops[0])
			ops = ops[1:]
			return v
		}
		for len(ops) > 0 {
			switch next() % 6 {
			case 0: // grow to k pages
				k := next() % (pages + 2)
				err := r.Grow(k * p)
				if k > pages {
					if !errors.Is(err, ErrExhausted) {
						t.Fatalf("grow to %d pages: %v", k, err)
					}
				} else if err != nil {
					t.Fatal(err)
				} else if k*p > len(model) {
					model = append(model, make([]byte, k*p-len(model))...)
				}
			case 1: // write a byte
				if len(model) == 0 {
					continue
				}
				off := (next()*p + next()*131) % len(model)
				v := byte(next())
				r.Bytes()[off], model[off] = v, v
			case 2: // compare everything
				if !bytes.Equal(r.Bytes(), model) {
					t.Fatal("region differs from model")
				}
			case 3: // release and reuse pages
				at, n := next()%(pages+1), next()%4
				err := r.Release(at*p, n*p)
				if (at+n)*p > len(model) {
					if !errors.Is(err, ErrInvalidSize) {
						t.Fatalf("release [%d,+%d) pages past ready: %v", at, n, err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				clear(model[at*p : (at+n)*p])
				if err := r.Reuse(at*p, n*p); err != nil {
					t.Fatal(err)
				}
			case 4: // unaligned release changes nothing
				if err := r.Release(1+next()%(p-1), p); !errors.Is(err, ErrUnaligned) && !errors.Is(err, ErrInvalidSize) {
					t.Fatalf("unaligned release: %v", err)
				}
			case 5: // protect read-only and back
				if len(model) == 0 {
					continue
				}
				if err := r.Protect(0, p, ProtRead); err != nil {
					t.Fatal(err)
				}
				if err := r.Protect(0, p, ProtReadWrite); err != nil {
					t.Fatal(err)
				}
			}
			if r.Len() != len(model) {
				t.Fatalf("Len %d, model %d", r.Len(), len(model))
			}
		}
		if !bytes.Equal(r.Bytes(), model) {
			t.Fatal("region differs from model at the end")
		}
	})
}

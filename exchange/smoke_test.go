package exchange

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/offheap/offheap/pool"
)

func TestSmoke(t *testing.T) {
	p, err := pool.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	x, err := New(context.Background(), p, &Options{Budget: 4096})
	if err != nil {
		t.Fatal(err)
	}
	pr, _ := x.Producer()
	co, _ := x.Consumer()
	done := make(chan error)
	go func() {
		for i := 0; i < 1000; i++ {
			m, err := pr.Commit([]byte{byte(i), 1, 2, 3})
			if err != nil {
				done <- err
				return
			}
			if err := pr.Send(m); err != nil {
				done <- err
				return
			}
			if err := pr.Send(m); !errors.Is(err, ErrSent) && !errors.Is(err, ErrReleased) {
				done <- err
				return
			}
		}
		done <- pr.Close()
	}()
	n := 0
	for {
		m, err := co.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Bytes()[0] != byte(n) {
			t.Fatalf("morsel %d has %v", n, m.Bytes())
		}
		n++
		if err := co.Release(m); err != nil {
			t.Fatal(err)
		}
		if err := co.Release(m); !errors.Is(err, ErrReleased) {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", x.Stats())
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Used != 0 {
		t.Fatalf("pool used %d after close", st.Used)
	}
}

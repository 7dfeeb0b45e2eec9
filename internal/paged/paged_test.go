package paged_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/paged"
	"github.com/offheap/offheap/mapped"
)

// The contract is tested by mapped's suite, which runs over paged memory too;
// these are what paged has of its own.

// TestLeakReported: in the checked build, paged memory garbage collected
// without Close is reported with the bytes it held.
func TestLeakReported(t *testing.T) {
	if !check.On {
		t.Skip("leak reports are part of the checked build (-tags offheapcheck)")
	}
	got := make(chan int, 4)
	restore := paged.SetLeakReport(func(what string, n int) { got <- n })
	defer restore()
	func() {
		p, _ := paged.New(&paged.Options{PageSize: 4096})
		_ = p.AppendInt64(1)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		select {
		case n := <-got:
			if n <= 0 {
				t.Fatalf("leak reported with %d bytes", n)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("leak not reported")
}

func TestErrorText(t *testing.T) {
	p, err := paged.New(&paged.Options{Name: "prices"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	err = p.Sync()
	if !errors.Is(err, mapped.ErrClosed) {
		t.Fatalf("Sync after Close: %v", err)
	}
	if want := `paged "prices": sync: ` + mapped.ErrClosed.Error(); err.Error() != want {
		t.Fatalf("error text %q, want %q", err, want)
	}
}

// TestErrorTextHasOneHead: an error from vmem underneath keeps its words
// but not its head (internal/errs), as in mapped.
func TestErrorTextHasOneHead(t *testing.T) {
	p, err := paged.New(&paged.Options{Name: "huge", Reserve: 1 << 62, PageSize: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.AppendInt64(1) // a page of 4 EiB: the reservation fails
	if err == nil {
		t.Fatal("a 4 EiB page was reserved")
	}
	if want := `paged "huge": grow: page 0: `; !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "vmem") {
		t.Fatalf("error text %q, want %q and the OS cause, without vmem's head", err, want)
	}
}

package errs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"github.com/offheap/offheap/internal/errs"
)

var errSentinel = errors.New("reservation exhausted")

func TestShape(t *testing.T) {
	_, openErr := os.Open("/no/such/offheap/file")
	inner := errs.New("vmem: map /x", "12288 bytes into 4096 reserved", errSentinel)
	middle := errs.New("mapped: open /x", "", inner)
	cases := []struct {
		err  error
		text string
		is   []error
	}{
		{inner, "vmem: map /x: 12288 bytes into 4096 reserved: reservation exhausted", []error{errSentinel}},
		{middle, "mapped: open /x: 12288 bytes into 4096 reserved: reservation exhausted", []error{errSentinel, inner}},
		{errs.New("column: open /x", "", middle), "column: open /x: 12288 bytes into 4096 reserved: reservation exhausted", []error{errSentinel, inner, middle}},
		{errs.New(`pool "p": release ref 7.0`, "", errSentinel), `pool "p": release ref 7.0: reservation exhausted`, []error{errSentinel}},
		{errs.New("mapped: open /no/such/offheap/file", "", openErr), "mapped: open /no/such/offheap/file: no such file or directory", []error{fs.ErrNotExist, syscall.ENOENT}},
		{errs.New("mapped: grow", "", errs.New("vmem: grow", "", syscall.ENOSPC)), "mapped: grow: no space left on device", []error{syscall.ENOSPC}},
		// An error wrapped by something else keeps its whole text.
		{errs.New("column: sync", "", fmt.Errorf("flush: %w", inner)), "column: sync: flush: vmem: map /x: 12288 bytes into 4096 reserved: reservation exhausted", []error{errSentinel}},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.text {
			t.Errorf("got  %q\nwant %q", got, c.text)
		}
		for _, target := range c.is {
			if !errors.Is(c.err, target) {
				t.Errorf("%q: errors.Is(%v) is false", c.err, target)
			}
		}
	}
	var pe *fs.PathError
	if !errors.As(cases[4].err, &pe) || pe.Op != "open" {
		t.Error("errors.As no longer finds the PathError")
	}
}

package exchange_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/offheap/offheap/exchange"
	"github.com/offheap/offheap/pool"
)

// A three-stage pipeline over morsels of 8-byte rows: a scan writes rows
// into morsels it reserves in the pool, two filter workers keep the
// multiples of three and send them on in new morsels, and an aggregate sums
// them. Each exchange holds at most 64 KiB; no row is copied between
// stages except by the filter that selects it.
func Example() {
	p, err := pool.New(1<<20, &pool.Options{Name: "query"})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	ctx := context.Background()
	scanned, _ := exchange.New(ctx, p, &exchange.Options{Name: "scan", Consumers: 2, Budget: 64 << 10})
	filtered, _ := exchange.New(ctx, p, &exchange.Options{Name: "filter", Producers: 2, Budget: 64 << 10})

	var wg sync.WaitGroup
	wg.Go(func() { // scan: 100 morsels of 1,000 rows
		out, _ := scanned.Producer()
		defer out.Close()
		for m := range 100 {
			mo, _ := out.Reserve(1000 * 8)
			rows := mo.Bytes()
			for r := range 1000 {
				binary.LittleEndian.PutUint64(rows[r*8:], uint64(m*1000+r))
			}
			_ = out.Send(mo)
		}
	})
	for range 2 {
		wg.Go(func() { // filter: keep the multiples of 3
			in, _ := scanned.Consumer()
			out, _ := filtered.Producer()
			defer out.Close()
			for {
				mi, err := in.Recv()
				if err != nil {
					return // io.EOF: the scan is done
				}
				rows, kept := mi.Bytes(), 0
				for r := 0; r < len(rows); r += 8 {
					if binary.LittleEndian.Uint64(rows[r:])%3 == 0 {
						kept++
					}
				}
				mo, _ := out.Reserve(kept * 8)
				dst := mo.Bytes()[:0]
				for r := 0; r < len(rows); r += 8 {
					if binary.LittleEndian.Uint64(rows[r:])%3 == 0 {
						dst = append(dst, rows[r:r+8]...)
					}
				}
				_ = in.Release(mi)
				_ = out.Send(mo)
			}
		})
	}

	in, _ := filtered.Consumer() // aggregate
	var n, sum uint64
	for {
		m, err := in.Recv()
		if err == io.EOF {
			break
		}
		rows := m.Bytes()
		for r := 0; r < len(rows); r += 8 {
			sum += binary.LittleEndian.Uint64(rows[r:])
			n++
		}
		_ = in.Release(m)
	}
	wg.Wait()
	fmt.Println(n, sum)
	_, _ = scanned.Close(), filtered.Close()
	fmt.Println(p.Stats().Used)
	// Output:
	// 33334 1666683333
	// 0
}

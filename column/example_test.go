package column_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/offheap/offheap/column"
)

// A fixed and a variable column: append rows, Sync to make them durable,
// read them back zero-copy, and reopen the files.
func Example() {
	dir, err := os.MkdirTemp("", "column-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	prices, err := column.OpenFixed[float64](filepath.Join(dir, "price"), nil)
	if err != nil {
		panic(err)
	}
	symbols, err := column.OpenVar(filepath.Join(dir, "symbol"), nil)
	if err != nil {
		panic(err)
	}
	for i, sym := range []string{"EURUSD", "GBPUSD", ""} {
		_ = prices.Append(1.25 + float64(i))
		_ = symbols.AppendStr(sym)
	}
	_ = symbols.AppendNull()
	_ = prices.Append(0)
	if err := prices.Sync(); err != nil { // durable: survives kill -9 and power loss
		panic(err)
	}
	fmt.Println(prices.Values(), prices.Committed(), symbols.Committed())
	_ = prices.Close()
	_ = symbols.Close() // Close commits too

	symbols, err = column.OpenVar(filepath.Join(dir, "symbol"), nil)
	if err != nil {
		panic(err)
	}
	defer symbols.Close()
	for i := range symbols.Rows() {
		s, ok := symbols.Str(i)
		fmt.Printf("%q %v\n", s, ok)
	}
	// Output:
	// [1.25 2.25 3.25 0] 4 0
	// "EURUSD" true
	// "GBPUSD" true
	// "" true
	// "" false
}

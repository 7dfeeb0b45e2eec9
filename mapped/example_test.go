package mapped_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/offheap/offheap/mapped"
)

// A file-backed Memory: append typed values and strings, read them back by
// offset with zero-copy views, and reopen the file after Close.
func Example() {
	dir, err := os.MkdirTemp("", "mapped-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "prices")

	m, err := mapped.OpenFile(path, nil)
	if err != nil {
		panic(err)
	}
	_ = m.AppendInt64(1700000000)
	_ = m.AppendFloat64(101.25)
	at := m.Len()
	_ = m.AppendStr("EURUSD")
	_ = m.AppendNull()
	s, _ := m.Str(at)
	fmt.Println(m.Int64(0), m.Float64(8), s, m.Len())
	if err := m.Close(); err != nil { // truncates the file to Len()
		panic(err)
	}

	m, err = mapped.OpenFile(path, nil)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	_, notNull := m.Str(at + 10)
	fmt.Println(m.Len(), m.Float64(8), notNull)
	// Output:
	// 1700000000 101.25 EURUSD 30
	// 30 101.25 false
}

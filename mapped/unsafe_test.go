// The one place mapped's tests turn bytes into a string without copying.

package mapped

import "unsafe"

// StringView returns b's bytes as a string without copying them, for tests
// that need a string larger than they may allocate. Sound while b's memory
// is neither freed nor written as long as the string is used: the tests
// view mapped memory they keep open and never write.
func StringView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

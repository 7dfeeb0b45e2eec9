// Darwin: no prefaulting; pages fault in on first write.

package mapped

// populate does nothing on Darwin.
func populate(b []byte) {}

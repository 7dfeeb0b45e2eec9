// Hooks for tests.

package paged

// SetLeakReport replaces where leaks are reported and returns a function that
// restores the previous reporter.
func SetLeakReport(f func(what string, bytes int)) (restore func()) {
	old := leakReport.Swap(&f)
	return func() { leakReport.Store(old) }
}

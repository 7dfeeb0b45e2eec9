//go:build linux && amd64 && !race

// The asymmetric fence on Linux/amd64: membarrier(2).

package exchange

import "golang.org/x/sys/unix"

const (
	membarrierRegisterPrivateExpedited = 1 << 4
	membarrierPrivateExpedited         = 1 << 3
)

// asymmetric reports whether membarrier(2) is available, so that release
// stores may be plain; it is decided once, at start-up, and never changes.
var asymmetric = registerMembarrier()

func registerMembarrier() bool {
	_, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierRegisterPrivateExpedited, 0, 0)
	return e == 0
}

// fence is the slow side of an asymmetric Dekker fence. A goroutine about to
// park stores its waiting flag, calls fence, then loads the condition it
// waits for; the fast side stores the condition (storeRelease, a plain
// store) and then loads the flag. membarrier makes every CPU running one of
// this process's threads execute a full barrier before it returns, so either
// the fast side's store is visible to the parker's load, or the fast side's
// load comes after the barrier and sees the flag: a wake-up is never lost.
// It costs a few hundred nanoseconds, paid only on the way to parking.
func fence() {
	if asymmetric {
		_, _, _ = unix.Syscall(unix.SYS_MEMBARRIER, membarrierPrivateExpedited, 0, 0)
	}
}

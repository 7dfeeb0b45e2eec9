// Yielding the CPU to other threads, on Linux.

package pool

import "golang.org/x/sys/unix"

// osYield gives this thread's CPU to another runnable thread: a spinning
// waiter's best move when the lock holder's thread was descheduled.
func osYield() { _, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

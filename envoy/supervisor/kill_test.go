package supervisor

import "syscall"

// syscallKill0 reports whether pid exists (signal 0 probes without sending).
func syscallKill0(pid int) error { return syscall.Kill(pid, 0) }

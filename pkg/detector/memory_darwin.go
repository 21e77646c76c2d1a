package detector

import "golang.org/x/sys/unix"

// Memory is how much memory a process may still allocate, and where that
// number comes from.
type Memory struct {
	Bytes  int64
	Source string
}

// AvailableMemory is, on macOS, the machine's physical memory (hw.memsize):
// a ceiling that refuses absurd sizes, not a measure of what is free.
func AvailableMemory() (m Memory, ok bool) {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil || n == 0 {
		return Memory{}, false
	}
	return Memory{int64(n), "the physical memory (hw.memsize)"}, true
}

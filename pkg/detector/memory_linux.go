package detector

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// Memory is how much memory a process may still allocate, and where that
// number comes from.
type Memory struct {
	Bytes  int64
	Source string // e.g. "MemAvailable in /proc/meminfo"
}

// AvailableMemory is the least of what this process may still allocate by
// each limit it can see: the system's MemAvailable (/proc/meminfo), its
// cgroup's memory limit less its usage (v2 memory.max, v1
// memory.limit_in_bytes), its address-space limit (ulimit -v) less its
// current virtual size, and a Go memory limit (GOMEMLIMIT) less the memory
// the runtime holds. ok is false when none could be read.
func AvailableMemory() (m Memory, ok bool) {
	consider := func(bytes int64, source string) {
		if bytes < 0 {
			bytes = 0
		}
		if !ok || bytes < m.Bytes {
			m, ok = Memory{bytes, source}, true
		}
	}
	if v, found := procValue("/proc/meminfo", "MemAvailable:"); found {
		consider(v, "MemAvailable in /proc/meminfo")
	}
	if limit, usage, file, found := cgroupMemory(); found {
		consider(limit-usage, "the cgroup limit "+file+" less its usage")
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &rl); err == nil && rl.Cur != math.MaxUint64 && rl.Cur < math.MaxInt64 {
		if vm, found := procValue("/proc/self/status", "VmSize:"); found {
			consider(int64(rl.Cur)-vm, "the address-space limit, ulimit -v, less this process's size")
		}
	}
	if lim := debug.SetMemoryLimit(-1); lim < math.MaxInt64 {
		var used int64
		if rss, found := procValue("/proc/self/status", "VmRSS:"); found {
			used = rss
		}
		consider(lim-used, "GOMEMLIMIT less this process's resident memory")
	}
	return m, ok
}

// procValue reads "KEY   N kB" from a /proc file, in bytes.
func procValue(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), key)
		if !found {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, false
		}
		v, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, false
		}
		if len(fields) > 1 && fields[1] == "kB" {
			v *= 1024
		}
		return v, true
	}
	return 0, false
}

// cgroupMemory reads this process's cgroup memory limit and usage (bytes);
// found is false without a numeric limit.
func cgroupMemory() (limit, usage int64, file string, found bool) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, 0, "", false
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dir, lim, use string
		switch {
		case parts[0] == "0" && parts[1] == "": // v2
			dir = filepath.Join("/sys/fs/cgroup", parts[2])
			lim, use = "memory.max", "memory.current"
		case strings.Contains(","+parts[1]+",", ",memory,"): // v1
			dir = filepath.Join("/sys/fs/cgroup/memory", parts[2])
			lim, use = "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		l, okL := readInt(filepath.Join(dir, lim))
		u, okU := readInt(filepath.Join(dir, use))
		// v1 writes "no limit" as a huge number.
		if okL && okU && l < 1<<60 {
			return l, u, filepath.Join(dir, lim), true
		}
	}
	return 0, 0, "", false
}

func readInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

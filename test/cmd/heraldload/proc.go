package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat; 100 on
// every Linux architecture Herald runs on.
const clockTicks = 100

// procSample is a process's CPU time and resident memory at one moment.
type procSample struct {
	cpuSeconds float64
	rssBytes   int64
}

// sampleProc reads /proc/<pid>/stat and /proc/<pid>/status.
func sampleProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	// The command name may hold spaces; fields after its closing parenthesis are fixed.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return procSample{}, fmt.Errorf("pid %d: short stat", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("pid %d: bad stat", pid)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	var rss int64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb * 1024
		}
	}
	return procSample{cpuSeconds: (utime + stime) / clockTicks, rssBytes: rss}, nil
}

// sampleAll samples every named process; ones that vanished are left out.
func sampleAll(pids map[string]int) map[string]procSample {
	out := map[string]procSample{}
	for name, pid := range pids {
		if s, err := sampleProc(pid); err == nil {
			out[name] = s
		}
	}
	return out
}

package queue

import (
	"strconv"
	"strings"
)

// parseEntryID splits a Redis Stream entry id "ms-seq".
func parseEntryID(id string) (ms, seq uint64, ok bool) {
	a, b, found := strings.Cut(id, "-")
	if !found {
		return 0, 0, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return ms, seq, err1 == nil && err2 == nil
}

// IsEntryID reports whether id has the form of a queue entry id. Ids of messages
// that were never stored (TTL 0) do not.
func IsEntryID(id string) bool {
	_, _, ok := parseEntryID(id)
	return ok
}

// EntryAfter reports whether entry id a comes after entry id b; every entry comes
// after "", and a malformed id comes after nothing.
func EntryAfter(a, b string) bool {
	am, as, ok := parseEntryID(a)
	if !ok {
		return false
	}
	if b == "" {
		return true
	}
	bm, bs, ok := parseEntryID(b)
	if !ok {
		return false
	}
	return am > bm || (am == bm && as > bs)
}

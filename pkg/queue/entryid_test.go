package queue

import "testing"

func TestEntryAfter(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"1-0", "", true},
		{"2-0", "1-5", true},
		{"1-6", "1-5", true},
		{"1-5", "1-5", false},
		{"1-4", "1-5", false},
		{"10-0", "9-0", true}, // numeric, not lexical
		{"u1234", "", false},
		{"1-0", "u1234", false},
		{"", "", false},
		{"1-x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.a+"_"+tt.b, func(t *testing.T) {
			if got := EntryAfter(tt.a, tt.b); got != tt.want {
				t.Fatalf("EntryAfter(%q, %q) = %v", tt.a, tt.b, got)
			}
		})
	}
	if IsEntryID("u00") || !IsEntryID("1700000000000-12") {
		t.Fatal("IsEntryID")
	}
}

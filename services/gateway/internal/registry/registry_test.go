package registry

import (
	"sync"
	"testing"

	"github.com/herald-push/herald/pkg/ids"
)

func TestPutRemove(t *testing.T) {
	r := New[*int]()
	u := ids.NewUAID()
	a, b := new(int), new(int)
	if _, replaced := r.Put(u, a); replaced {
		t.Fatal("first Put replaced something")
	}
	if old, replaced := r.Put(u, b); !replaced || old != a {
		t.Fatal("second Put did not return the first value")
	}
	if r.Remove(u, a) {
		t.Fatal("Remove of a stale value removed the newer one")
	}
	if got, ok := r.Get(u); !ok || got != b {
		t.Fatal("newer value lost")
	}
	if !r.Remove(u, b) || r.Len() != 0 {
		t.Fatal("Remove of the current value failed")
	}
}

func TestConcurrent(t *testing.T) {
	r := New[int]()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				u := ids.NewUAID()
				r.Put(u, g*1000+i)
				if _, ok := r.Get(u); !ok {
					t.Error("lost an entry")
				}
			}
		})
	}
	wg.Wait()
	n := 0
	r.Each(func(ids.UAID, int) { n++ })
	if n != 4000 || r.Len() != 4000 {
		t.Fatalf("Each saw %d, Len %d, want 4000", n, r.Len())
	}
}

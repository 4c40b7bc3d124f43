package wsconn

// onFreshStack runs fn on a short-lived goroutine and returns when fn has.
//
// A goroutine's stack grows to the deepest call it ever made and shrinks only at
// garbage collections, by half each time. The reader waits for most of a
// connection's life in the library's read, which needs 4 KiB; parsing a frame's
// JSON on it would grow it to 8 KiB for good. The cost is a goroutine start
// (about a microsecond) per frame.
func onFreshStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

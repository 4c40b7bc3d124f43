package httpconn

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// sseRetry is the reconnection delay an event stream tells the browser
// (EventSource), in milliseconds: well within the idle timeout.
const sseRetry = 2000

// stream serves the connection's frames as Server-Sent Events: each frame one
// event whose data is the frame's JSON and, for a notification, whose id is its
// version. A stream resumed with Last-Event-ID (or ?last=) sends again every
// unacknowledged notification after that event; the connection's end is its last
// event, a close frame, after which the stream ends.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	c, ok := s.lookup(w, r)
	if !ok {
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("last")
	}
	rd, pos := c.attach(last)
	defer c.detach(rd)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	// Proxies (nginx) must not buffer the stream.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var buf bytes.Buffer
	flush := func() bool {
		if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
			return false
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		buf.Reset()
		return rc.Flush() == nil
	}
	buf.WriteString("retry: ")
	buf.WriteString(itoa(sseRetry))
	buf.WriteString("\n\n")
	keepalive := time.NewTicker(s.cfg.Keepalive)
	defer keepalive.Stop()
	for {
		events, next, grown := c.read(pos)
		pos = next
		for _, e := range events {
			writeEvent(&buf, e.id, e.data)
		}
		if code, closed := c.closed(); closed {
			// What the connection sent before it closed is in the log by now.
			events, _, _ := c.read(pos)
			for _, e := range events {
				writeEvent(&buf, e.id, e.data)
			}
			b, _ := json.Marshal(closeFrame(code)) // a struct of strings and ints
			writeEvent(&buf, "", b)
			flush()
			return
		}
		if buf.Len() > 0 && !flush() {
			return // the user agent resumes with Last-Event-ID
		}
		select {
		case <-grown:
		case <-c.done:
		case <-rd.stop:
			return // a newer stream or poll took over
		case <-keepalive.C:
			buf.WriteString(": keepalive\n\n")
		case <-r.Context().Done():
			return
		}
	}
}

// writeEvent writes one event; data is one line of JSON.
func writeEvent(buf *bytes.Buffer, id string, data []byte) {
	if id != "" {
		buf.WriteString("id: ")
		buf.WriteString(id)
		buf.WriteByte('\n')
	}
	buf.WriteString("data: ")
	buf.Write(data)
	buf.WriteString("\n\n")
}

func itoa(n int) string {
	b, _ := json.Marshal(n) // an int always marshals
	return string(b)
}

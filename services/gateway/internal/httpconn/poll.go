package httpconn

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// poll answers with the frames waiting for the user agent, as a JSON array, at
// once if there are any, or else when one arrives or the poll timeout passes (an
// empty array). Like a stream, a poll reads after ?last= (or Last-Event-ID): the
// version of the last notification the user agent received; without it, every
// unacknowledged notification comes again. ?timeout= (seconds) holds the poll for
// less than the poll timeout; 0 answers at once. When the connection ends during
// the poll, the array ends with the close frame.
func (s *Server) poll(w http.ResponseWriter, r *http.Request) {
	c, ok := s.lookup(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	wait := s.cfg.PollTimeout
	if v := q.Get("timeout"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 {
			http.Error(w, "timeout: want seconds", http.StatusBadRequest)
			return
		}
		wait = min(wait, time.Duration(secs*float64(time.Second)))
	}
	last := q.Get("last")
	if last == "" {
		last = r.Header.Get("Last-Event-ID")
	}
	rd, pos := c.attach(last)
	defer c.detach(rd)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		events, next, grown := c.read(pos)
		pos = next
		code, closed := c.closed()
		if closed {
			more, _, _ := c.read(pos)
			events = append(events, more...)
		}
		if len(events) > 0 || closed {
			var buf bytes.Buffer
			buf.WriteByte('[')
			for i, e := range events {
				if i > 0 {
					buf.WriteByte(',')
				}
				buf.Write(e.data)
			}
			if closed {
				if len(events) > 0 {
					buf.WriteByte(',')
				}
				b, _ := json.Marshal(closeFrame(code)) // a struct of strings and ints
				buf.Write(b)
			}
			buf.WriteString("]\n")
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(buf.Bytes()) // a lost answer is read again with the same ?last=
			return
		}
		select {
		case <-grown:
			continue
		case <-c.done:
			continue
		case <-rd.stop:
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]\n")) // as above
		return
	}
}

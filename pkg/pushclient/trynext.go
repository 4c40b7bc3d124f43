package pushclient

import "github.com/herald-push/herald/pkg/mozproto"

// TryNext returns a notification that has already arrived, without waiting: a user
// agent uses it to gather what arrived together and acknowledge it in one frame.
func (c *Client) TryNext() (mozproto.Notification, bool) {
	c.notesMu.Lock()
	defer c.notesMu.Unlock()
	if len(c.notes) == 0 {
		return mozproto.Notification{}, false
	}
	n := c.notes[0]
	c.notes[0] = mozproto.Notification{} // let its strings go
	c.notes = c.notes[1:]
	if len(c.notes) == 0 {
		c.notes = nil // give the backing array back
	}
	return n, true
}

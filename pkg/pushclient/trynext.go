package pushclient

import "github.com/herald-push/herald/pkg/mozproto"

// TryNext returns a notification that has already arrived, without waiting: a user
// agent uses it to gather what arrived together and acknowledge it in one frame.
func (c *Client) TryNext() (mozproto.Notification, bool) {
	select {
	case n := <-c.notes:
		return n, true
	default:
		return mozproto.Notification{}, false
	}
}

package mozproto

// TypeClose is the frame the HTTP transports (Server-Sent Events and long-polling)
// end a connection with, where the WebSocket has its close frame.
const TypeClose = "close"

// CloseFrame tells a user agent of the HTTP transports that its connection ended, with
// the code and reason a WebSocket would have been closed with (Close… codes).
type CloseFrame struct {
	Type   string `json:"messageType"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

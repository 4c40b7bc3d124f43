package mozproto

import (
	"encoding/json"
	"slices"
	"strconv"
)

// Marshal encodes a frame for a user agent: a Notification, one per message
// delivered, without reflection; any other frame with encoding/json. The bytes are
// encoding/json's either way.
func Marshal(v any) ([]byte, error) {
	if n, ok := v.(Notification); ok {
		return n.marshal(), nil
	}
	return json.Marshal(v)
}

// marshal encodes n as encoding/json does: fields in order, data and headers
// omitted when empty, header names sorted; in one buffer.
func (n Notification) marshal() []byte {
	var names [4]string
	keys := names[:0]
	size := 96 + len(n.ChannelID) + len(n.Version) + len(n.Data)
	for k, v := range n.Headers {
		keys = append(keys, k)
		size += len(k) + len(v) + 6
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, `{"messageType":`...)
	b = appendString(b, n.Type)
	b = append(b, `,"channelID":`...)
	b = appendString(b, n.ChannelID)
	b = append(b, `,"version":`...)
	b = appendString(b, n.Version)
	if n.Data != "" {
		b = append(b, `,"data":`...)
		b = appendString(b, n.Data)
	}
	if len(keys) > 0 {
		b = append(b, `,"headers":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, n.Headers[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"ttl":`...)
	b = strconv.AppendInt(b, n.TTL, 10)
	return append(b, '}')
}

// appendString appends s as a JSON string, as encoding/json does. Base64url data,
// channel ids, versions and encryption parameters need no escaping; anything else
// (quotes, control characters, the HTML characters encoding/json escapes, bytes
// past ASCII) goes through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil {
				panic(err) // encoding/json encodes every string
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

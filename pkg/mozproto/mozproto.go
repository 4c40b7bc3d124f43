// Package mozproto holds the frames of the Mozilla Push Service protocol, the JSON
// WebSocket protocol Firefox speaks to its push service (see docs/protocol.md).
// The gateway and the user-agent client (pushclient) share it; it parses and encodes
// frames and knows nothing of sockets or sessions.
package mozproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Message types.
const (
	TypeHello              = "hello"
	TypeRegister           = "register"
	TypeUnregister         = "unregister"
	TypeNotification       = "notification"
	TypeAck                = "ack"
	TypeNack               = "nack"
	TypePing               = "ping"
	TypeBroadcast          = "broadcast"
	TypeBroadcastSubscribe = "broadcast_subscribe"
	// TypeUrgency is Herald's extension: the user agent states the lowest urgency
	// it wants delivered now (see docs/protocol.md).
	TypeUrgency = "urgency"
)

// Errors of Parse. Each is a protocol error: the connection is closed.
var (
	ErrMalformed   = errors.New("malformed frame")
	ErrUnknownType = errors.New("unknown messageType")
)

// ClientMessage is any frame a user agent sends. Only the fields of its Type are set.
type ClientMessage struct {
	Type string `json:"messageType"`

	// hello
	UAID       string            `json:"uaid,omitempty"`
	ChannelIDs []string          `json:"channelIDs,omitempty"`
	UseWebPush bool              `json:"use_webpush,omitempty"`
	Broadcasts map[string]string `json:"broadcasts,omitempty"`
	// MinUrgency is the urgency bar a hello may set before any message is sent
	// (Herald's extension; see TypeUrgency).
	MinUrgency string `json:"min_urgency,omitempty"`

	// register, unregister
	ChannelID string `json:"channelID,omitempty"`
	Key       string `json:"key,omitempty"`

	// unregister, nack: the reason code
	Code int `json:"code,omitempty"`

	// ack
	Updates []Update `json:"updates,omitempty"`

	// nack
	Version string `json:"version,omitempty"`

	// urgency: the lowest urgency wanted now (very-low, low, normal, high)
	Min string `json:"min,omitempty"`
}

// Update acknowledges one notification.
type Update struct {
	ChannelID string `json:"channelID"`
	Version   string `json:"version"`
	Code      int    `json:"code,omitempty"`
}

// Parse reads one client frame. An empty object is a ping, as Firefox sends it.
func Parse(data []byte) (ClientMessage, error) {
	var m ClientMessage
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return m, ErrMalformed
	}
	if !scanClientMessage(trimmed, &m) {
		var err error
		if m, err = unmarshal(trimmed); err != nil {
			return m, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	switch m.Type {
	case "":
		if !isEmptyObject(trimmed) {
			return m, fmt.Errorf("%w: missing messageType", ErrMalformed)
		}
		m.Type = TypePing
	case TypeHello, TypeRegister, TypeUnregister, TypeAck, TypeNack, TypePing, TypeBroadcastSubscribe, TypeUrgency:
	default:
		return m, fmt.Errorf("%w: %q", ErrUnknownType, truncate(m.Type, 32))
	}
	return m, nil
}

// unmarshal parses a frame the scanner left, with encoding/json. Unmarshal, not a
// Decoder: it rejects anything after the object too, and spares a Decoder's buffer.
// A function of its own, so that only this path allocates the message.
func unmarshal(b []byte) (ClientMessage, error) {
	var m ClientMessage
	err := json.Unmarshal(b, &m)
	return m, err
}

// isEmptyObject reports whether b, a JSON object, is {} with or without spaces.
func isEmptyObject(b []byte) bool {
	return len(bytes.TrimLeft(b[1:], " \t\r\n")) == 1 && b[len(b)-1] == '}'
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// HelloReply answers hello.
type HelloReply struct {
	Type       string     `json:"messageType"`
	UAID       string     `json:"uaid"`
	Status     int        `json:"status"`
	UseWebPush bool       `json:"use_webpush"`
	Broadcasts Broadcasts `json:"broadcasts"`
}

// Broadcasts maps broadcast ids to their current versions. Ids the push service
// does not define are listed under the key "errors", itself a map of id to reason,
// as autopush answers them; Firefox ignores ids it did not ask for.
type Broadcasts map[string]any

// BroadcastErrors is the key of Broadcasts listing the ids the service does not define.
const BroadcastErrors = "errors"

// BroadcastReply answers broadcast_subscribe when there is something to say, and
// announces a broadcast's new version.
type BroadcastReply struct {
	Type       string     `json:"messageType"`
	Broadcasts Broadcasts `json:"broadcasts"`
}

// UrgencyReply answers urgency with the bar now in force.
type UrgencyReply struct {
	Type   string `json:"messageType"`
	Min    string `json:"min"`
	Status int    `json:"status"`
}

// PingTooSoon answers a ping that came sooner than the minimum ping interval. Its
// messageType is "ping", so Firefox still takes it for a pong; Status is 429 and
// RetryAfter the seconds to wait. A client that pings too soon again is closed
// with CloseTooManyPings.
type PingTooSoon struct {
	Type       string `json:"messageType"`
	Status     int    `json:"status"`
	RetryAfter int64  `json:"retry_after"`
}

// RegisterReply answers register.
type RegisterReply struct {
	Type         string `json:"messageType"`
	ChannelID    string `json:"channelID"`
	Status       int    `json:"status"`
	PushEndpoint string `json:"pushEndpoint,omitempty"`
}

// UnregisterReply answers unregister.
type UnregisterReply struct {
	Type      string `json:"messageType"`
	ChannelID string `json:"channelID"`
	Status    int    `json:"status"`
}

// Notification carries one push message to the user agent.
type Notification struct {
	Type      string `json:"messageType"`
	ChannelID string `json:"channelID"`
	Version   string `json:"version"`
	// Data is the encrypted body in base64url without padding; absent for a push
	// without data.
	Data string `json:"data,omitempty"`
	// Headers carry the encryption parameters: encoding, and for aesgcm also
	// encryption and crypto_key.
	Headers map[string]string `json:"headers,omitempty"`
	TTL     int64             `json:"ttl"`
}

// Ping is the keepalive reply, an empty object.
type Ping struct{}

// Urgency names, as in the Urgency header of RFC 8030 §5.3, lowest first.
const (
	UrgencyVeryLow = "very-low"
	UrgencyLow     = "low"
	UrgencyNormal  = "normal"
	UrgencyHigh    = "high"
)

// Ack codes a user agent gives for each update (Firefox's nsIPushErrorReporter).
// Every code ends the message's life: only 100 means the service worker got it.
const (
	AckDelivered       = 100
	AckDecryptionError = 101
	AckNotDelivered    = 102
)

// Nack codes: a service worker failed on a message that was already acknowledged.
const (
	NackUncaughtException  = 301
	NackUnhandledRejection = 302
	NackInternalError      = 303
)

// Unregister codes: why the user agent dropped a subscription.
const (
	UnregisterManual            = 200
	UnregisterQuotaExceeded     = 201
	UnregisterPermissionRevoked = 202
)

// Close codes the gateway uses when it ends a connection (RFC 6455 §7.4; 4000-4999
// are the application's own).
const (
	// CloseGoingAway asks the user agent to reconnect now, to another gateway: the
	// gateway is draining.
	CloseGoingAway = 1001
	// CloseProtocolError ends a connection that sent a frame the protocol does not allow.
	CloseProtocolError = 1002
	// CloseTooBig ends a connection that sent a frame over the read limit.
	CloseTooBig = 1009
	// CloseInternal ends a connection on a server error; the user agent reconnects.
	CloseInternal = 1011
	// CloseTakenOver ends a connection whose uaid connected again elsewhere.
	CloseTakenOver = 4000
	// CloseSlowConsumer ends a connection that does not read its messages fast enough.
	CloseSlowConsumer = 4001
	// CloseIdle ends a connection that did not say hello in time, or that stopped
	// answering WebSocket pings.
	CloseIdle = 4002
	// CloseTooManyPings ends a connection that kept pinging sooner than the minimum
	// ping interval after being told (PingTooSoon).
	CloseTooManyPings = 4003
	// CloseBackoff is Firefox's "do not reconnect" code (kBACKOFF_WS_STATUS_CODE in
	// PushServiceWebSocket): Firefox stays disconnected until it has a request to
	// send (a subscription, an unsubscription, a broadcast subscription) or the
	// network changes. The gateway sends it only to user agents with nothing to
	// receive: no subscription and no broadcast it defines.
	CloseBackoff = 4774
)

package mozproto

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{name: "firefox hello", in: `{"messageType":"hello","broadcasts":{},"use_webpush":true}`, want: TypeHello},
		{name: "hello resume", in: `{"messageType":"hello","uaid":"5d6a1c3e4c1b4b0e9a7a2b1f0f9c8d7e","channelIDs":["5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e"],"use_webpush":true}`, want: TypeHello},
		{name: "register", in: `{"messageType":"register","channelID":"5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e","key":"BAAA"}`, want: TypeRegister},
		{name: "unregister", in: `{"messageType":"unregister","channelID":"x","code":200}`, want: TypeUnregister},
		{name: "ack", in: `{"messageType":"ack","updates":[{"channelID":"x","version":"1-0","code":100}]}`, want: TypeAck},
		{name: "nack", in: `{"messageType":"nack","version":"1-0","code":301}`, want: TypeNack},
		{name: "empty ping", in: `{}`, want: TypePing},
		{name: "spaced ping", in: " { } ", want: TypePing},
		{name: "typed ping", in: `{"messageType":"ping"}`, want: TypePing},
		{name: "unknown type", in: `{"messageType":"launch"}`, wantErr: ErrUnknownType},
		{name: "no type", in: `{"uaid":"x"}`, wantErr: ErrMalformed},
		{name: "not json", in: `hello`, wantErr: ErrMalformed},
		{name: "array", in: `[1,2]`, wantErr: ErrMalformed},
		{name: "empty", in: ``, wantErr: ErrMalformed},
		{name: "trailing", in: `{"messageType":"hello"} {}`, wantErr: ErrMalformed},
		{name: "wrong field type", in: `{"messageType":"register","channelID":5}`, wantErr: ErrMalformed},
		{name: "type not string", in: `{"messageType":1}`, wantErr: ErrMalformed},
		{name: "truncated", in: `{"messageType":"hel`, wantErr: ErrMalformed},
		{name: "firefox register with padded key", in: `{"channelID":"b502b227-0f0a-4ae5-9c5a-9dd38842a446","messageType":"register","key":"BJTtaB5X9gQvJsBfSHaMRYUV1xhCKtAi--XJSY7xtiMoa7dW0v9_MYC3S0QtHKG-Ysbmgp8KdxfZDaLfUBN5od4="}`, want: TypeRegister},
		{name: "firefox broadcast_subscribe", in: `{"messageType":"broadcast_subscribe","broadcasts":{"remote-settings/monitor_changes":"\"0\""}}`, want: TypeBroadcastSubscribe},
		{name: "urgency", in: `{"messageType":"urgency","min":"high"}`, want: TypeUrgency},
		{name: "hello with null uaid", in: `{"messageType":"hello","uaid":null,"use_webpush":true}`, want: TypeHello},
		{name: "broadcast versions not strings", in: `{"messageType":"hello","broadcasts":{"a":1}}`, wantErr: ErrMalformed},
		{name: "server frame from a client", in: `{"messageType":"notification"}`, wantErr: ErrUnknownType},
		{name: "null", in: `null`, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse(%s) err = %v, want %v", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || m.Type != tt.want {
				t.Fatalf("Parse(%s) = %q, %v; want %q", tt.in, m.Type, err, tt.want)
			}
		})
	}
}

func TestNotificationShape(t *testing.T) {
	b, err := json.Marshal(Notification{Type: TypeNotification, ChannelID: "c", Version: "v", TTL: 60})
	if err != nil {
		t.Fatal(err)
	}
	// A push without data carries neither data nor headers (Firefox then shows no payload).
	if got := string(b); got != `{"messageType":"notification","channelID":"c","version":"v","ttl":60}` {
		t.Fatalf("got %s", got)
	}
}

// FuzzParse feeds the parser arbitrary frames; testdata/fuzz/FuzzParse holds frames
// a stock Firefox ESR sent to Herald, and Herald's own extensions.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"messageType":"hello","broadcasts":{},"use_webpush":true}`,
		`{"messageType":"ack","updates":[{"channelID":"x","version":"1-0"}]}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("Parse error %v is neither ErrMalformed nor ErrUnknownType", err)
			}
			return
		}
		if m.Type == "" {
			t.Fatal("parsed a frame without a type")
		}
		// What parses re-encodes and parses again to the same type.
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := Parse(again)
		if err != nil || m2.Type != m.Type {
			t.Fatalf("re-parse of %s: %q, %v; want %q", again, m2.Type, err, m.Type)
		}
	})
}

package mozproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
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
		{name: "trailing bracket", in: `{"messageType":"ping"}]`, wantErr: ErrMalformed},
		{name: "ping with a field", in: `{"uaid":""}`, wantErr: ErrMalformed},
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
		// The scanner's paths (see scanClientMessage).
		` { "messageType" : "ack" , "updates" : [ { "channelID" : "a" , "version" : "1-0" , "code" : 102 } , { "code" : -0 } ] } `,
		`{"messageType":"nack","version":"1-0","code":-301}`,
		`{"messageType":"hello","uaid":"","channelIDs":["a",""],"use_webpush":false,"min_urgency":"low"}`,
		`{"messageType":"urgency","min":"normal"}`,
		`{"messageType":"unregister","channelID":"x","code":0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// What the scanner takes, encoding/json reads to the same message.
		if trimmed := bytes.TrimSpace(b); len(trimmed) > 0 && trimmed[0] == '{' {
			var scanned ClientMessage
			if scanClientMessage(trimmed, &scanned) {
				var want ClientMessage
				if err := json.Unmarshal(trimmed, &want); err != nil {
					t.Fatalf("scanned %q, which encoding/json refuses: %v", trimmed, err)
				}
				if !reflect.DeepEqual(scanned, want) {
					t.Fatalf("scanned %q to %#v; encoding/json reads %#v", trimmed, scanned, want)
				}
			}
		}
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

func BenchmarkParse(b *testing.B) {
	for _, bb := range []struct{ name, frame string }{
		{"ack", `{"messageType":"ack","updates":[{"channelID":"5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e","version":"1732350943123-0","code":100}]}`},
		{"register", `{"messageType":"register","channelID":"5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e"}`},
		{"ping", `{}`},
	} {
		b.Run(bb.name, func(b *testing.B) {
			data := []byte(bb.frame)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestScanTakesTheFramesSentMost checks that the frames a gateway gets most skip
// encoding/json, and that what the scanner leaves to it still parses.
func TestScanTakesTheFramesSentMost(t *testing.T) {
	for _, tt := range []struct {
		in      string
		scanned bool
	}{
		{`{"messageType":"ack","updates":[{"channelID":"b502b227-0f0a-4ae5-9c5a-9dd38842a446","version":"1795416132303-0","code":100}]}`, true},
		{`{"messageType":"ack","updates":[{"channelID":"a","version":"1-0"},{"channelID":"b","version":"2-0","code":102}]}`, true},
		{` { "messageType" : "ack" , "updates" : [ ] } `, true},
		{`{"channelID":"b502b227-0f0a-4ae5-9c5a-9dd38842a446","messageType":"register","key":"BJTtaB5X9gQvJsBfSHaMRYUV1xhCKtAi--XJSY7xtiMoa7dW0v9_MYC3S0QtHKG-Ysbmgp8KdxfZDaLfUBN5od4="}`, true},
		{`{"messageType":"unregister","channelID":"x","code":200}`, true},
		{`{"messageType":"hello","uaid":"5d6a1c3e4c1b4b0e9a7a2b1f0f9c8d7e","channelIDs":["a","b"],"use_webpush":true}`, true},
		{`{}`, true},
		{`{"messageType":"nack","version":"1-0","code":-301}`, true},
		// Left to encoding/json:
		{`{"messageType":"hello","broadcasts":{},"use_webpush":true}`, false},
		{`{"messageType":"hello","uaid":null}`, false},
		{`{"messageType":"ack","messageType":"ping"}`, false},
		{`{"MessageType":"ping"}`, false},
		{`{"messageType":"p\u0069ng"}`, false},
		{`{"messageType":"nack","code":1e2}`, false},
		{`{"messageType":"nack","code":1234567890}`, false},
		{`{"messageType":"ack","updates":[{"channelID":"a","version":"1-0","extra":1}]}`, false},
		{`{"messageType":"ping"} {}`, false},
	} {
		var m ClientMessage
		trimmed := bytes.TrimSpace([]byte(tt.in))
		if got := scanClientMessage(trimmed, &m); got != tt.scanned {
			t.Errorf("scanClientMessage(%s) = %v, want %v", tt.in, got, tt.scanned)
		}
		if tt.scanned {
			var want ClientMessage
			if err := json.Unmarshal(trimmed, &want); err != nil || !reflect.DeepEqual(m, want) {
				t.Errorf("scanned %s to %#v; encoding/json reads %#v, %v", tt.in, m, want, err)
			}
		}
	}
}

func TestMarshalNotification(t *testing.T) {
	for _, n := range []Notification{
		{Type: TypeNotification, ChannelID: "c", Version: "v", TTL: 60},
		{Type: TypeNotification, ChannelID: "b502b227-0f0a-4ae5-9c5a-9dd38842a446", Version: "1795416132303-0", TTL: 0,
			Data: "aGVsbG8", Headers: map[string]string{"encoding": "aes128gcm"}},
		{Type: TypeNotification, ChannelID: "c", Version: "v", TTL: -1, Data: "x", Headers: map[string]string{}},
		{Type: TypeNotification, ChannelID: "c", Version: "v", TTL: 1 << 40, Data: "x",
			Headers: map[string]string{"encoding": "aesgcm", "encryption": "salt=abc", "crypto_key": "dh=xyz", "b": "1", "a": "2", "z<": "&>"}},
		{Type: `no"te`, ChannelID: "a\\b", Version: "\x00\x1f\x7f", Data: "é\u2028\xff", Headers: map[string]string{"ü": "\t"}},
	} {
		want, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Marshal(n)
		if err != nil || string(got) != string(want) {
			t.Errorf("Marshal(%#v) = %s, %v; encoding/json gives %s", n, got, err, want)
		}
	}
	// Other frames go through encoding/json.
	got, err := Marshal(RegisterReply{Type: TypeRegister, ChannelID: "c", Status: 200})
	if err != nil || string(got) != `{"messageType":"register","channelID":"c","status":200}` {
		t.Fatalf("Marshal(RegisterReply) = %s, %v", got, err)
	}
}

// FuzzMarshalNotification checks that a notification encodes as encoding/json
// encodes it, whatever its strings.
func FuzzMarshalNotification(f *testing.F) {
	f.Add("b502b227-0f0a-4ae5-9c5a-9dd38842a446", "1795416132303-0", "aGVsbG8", "encoding", "aes128gcm", int64(60))
	f.Add("c", `"<&>`, "", "crypto_key", "dh=\"x\"", int64(-1))
	f.Fuzz(func(t *testing.T, ch, version, data, name, value string, ttl int64) {
		n := Notification{Type: TypeNotification, ChannelID: ch, Version: version, Data: data, TTL: ttl,
			Headers: map[string]string{name: value, "encoding": value + name}}
		want, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := Marshal(n); string(got) != string(want) {
			t.Fatalf("Marshal = %s; encoding/json gives %s", got, want)
		}
	})
}

func BenchmarkMarshalNotification(b *testing.B) {
	n := Notification{Type: TypeNotification, ChannelID: "b502b227-0f0a-4ae5-9c5a-9dd38842a446", Version: "1795416132303-0", TTL: 60,
		Data:    "0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f",
		Headers: map[string]string{"encoding": "aes128gcm"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(n); err != nil {
			b.Fatal(err)
		}
	}
}

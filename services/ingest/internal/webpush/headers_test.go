package webpush

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/herald-push/herald/pkg/ece"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/ingest/internal/apierr"
)

func TestParseTTL(t *testing.T) {
	const maxTTL = 5184000
	for _, tc := range []struct {
		in    string
		want  int64
		errno int
	}{
		{in: "0", want: 0},
		{in: "60", want: 60},
		{in: " 60 ", want: 60},
		{in: "007", want: 7},
		{in: "5184000", want: maxTTL},
		{in: "5184001", want: maxTTL},
		{in: "99999999999999999999999", want: maxTTL},
		{in: "", errno: apierr.ErrnoMissingTTL},
		{in: "  ", errno: apierr.ErrnoMissingTTL},
		{in: "-1", errno: apierr.ErrnoInvalidHeader},
		{in: "+5", errno: apierr.ErrnoInvalidHeader},
		{in: "1.5", errno: apierr.ErrnoInvalidHeader},
		{in: "1e3", errno: apierr.ErrnoInvalidHeader},
		{in: "soon", errno: apierr.ErrnoInvalidHeader},
		{in: "60, 60", errno: apierr.ErrnoInvalidHeader},
		{in: "0x10", errno: apierr.ErrnoInvalidHeader},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseTTL(tc.in, maxTTL)
			if tc.errno != 0 {
				if err == nil || err.Errno != tc.errno || err.Status != http.StatusBadRequest {
					t.Fatalf("parseTTL(%q) = %d, %v; want errno %d", tc.in, got, err, tc.errno)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseTTL(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseUrgency(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want heraldv1.Urgency
		ok   bool
	}{
		{"", heraldv1.Urgency_URGENCY_NORMAL, true},
		{"normal", heraldv1.Urgency_URGENCY_NORMAL, true},
		{"very-low", heraldv1.Urgency_URGENCY_VERY_LOW, true},
		{"low", heraldv1.Urgency_URGENCY_LOW, true},
		{"high", heraldv1.Urgency_URGENCY_HIGH, true},
		{" HIGH ", heraldv1.Urgency_URGENCY_HIGH, true},
		{"urgent", 0, false},
		{"very low", 0, false},
		{"very_low", 0, false},
		{"high, low", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseUrgency(tc.in)
			if !tc.ok {
				if err == nil || err.Errno != apierr.ErrnoInvalidHeader || err.Status != http.StatusBadRequest {
					t.Fatalf("parseUrgency(%q) = %v, %v; want errno 112", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseUrgency(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseTopic(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"", true},
		{"a", true},
		{"scores-AND_results-0123456789abc", true}, // 32
		{strings.Repeat("x", 33), false},
		{"with space", false},
		{"plus+slash/", false},
		{"padded==", false},
		{"dot.ted", false},
		{"ünïcode", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseTopic(tc.in)
			if !tc.ok {
				if err == nil || err.Errno != apierr.ErrnoInvalidTopic || err.Status != http.StatusBadRequest {
					t.Fatalf("parseTopic(%q) = %q, %v; want errno 113", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.in {
				t.Fatalf("parseTopic(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
}

const (
	testSalt = "DGv6ra1nlYgDCS1FRnbzlw"
	testDH   = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
)

func TestParseEncoding(t *testing.T) {
	good := aes128gcmBody(t, 150)
	headerOnly := good[:ece.HeaderSize]
	for _, tc := range []struct {
		name   string
		header map[string]string
		body   []byte
		want   map[string]string
		errno  int
	}{
		{name: "no body, no encoding", body: nil},
		{name: "no body, any encoding", header: map[string]string{"Content-Encoding": "gzip"}, body: nil},
		{name: "aes128gcm", header: map[string]string{"Content-Encoding": "aes128gcm"}, body: good, want: map[string]string{"encoding": "aes128gcm"}},
		{name: "aes128gcm upper case", header: map[string]string{"Content-Encoding": "AES128GCM"}, body: good, want: map[string]string{"encoding": "aes128gcm"}},
		{name: "aes128gcm with a legacy VAPID key", header: map[string]string{"Content-Encoding": "aes128gcm", "Crypto-Key": "p256ecdsa=" + testDH}, body: good, want: map[string]string{"encoding": "aes128gcm"}},
		{name: "aes128gcm header only", header: map[string]string{"Content-Encoding": "aes128gcm"}, body: headerOnly, errno: 110},
		{name: "aes128gcm one byte short of a record", header: map[string]string{"Content-Encoding": "aes128gcm"}, body: good[:ece.HeaderSize+16], errno: 110},
		{name: "aes128gcm shortest record", header: map[string]string{"Content-Encoding": "aes128gcm"}, body: good[:ece.HeaderSize+17], want: map[string]string{"encoding": "aes128gcm"}},
		{name: "aes128gcm garbage", header: map[string]string{"Content-Encoding": "aes128gcm"}, body: bytes.Repeat([]byte{1}, 100), errno: 110},
		{name: "aes128gcm with a salt header", header: map[string]string{"Content-Encoding": "aes128gcm", "Encryption": "salt=" + testSalt}, body: good, errno: 110},
		{name: "aes128gcm with a dh header", header: map[string]string{"Content-Encoding": "aes128gcm", "Crypto-Key": "dh=" + testDH}, body: good, errno: 110},
		{name: "aesgcm", header: map[string]string{"Content-Encoding": "aesgcm", "Encryption": "salt=" + testSalt, "Crypto-Key": "dh=" + testDH},
			body: make([]byte, 18), want: map[string]string{"encoding": "aesgcm", "encryption": "salt=" + testSalt, "crypto_key": "dh=" + testDH}},
		{name: "aesgcm with VAPID key and rs", header: map[string]string{"Content-Encoding": "aesgcm", "Encryption": "keyid=p256dh;salt=" + testSalt + ";rs=4096", "Crypto-Key": "dh=" + testDH + ";p256ecdsa=" + testDH},
			body: make([]byte, 40), want: map[string]string{"encoding": "aesgcm", "encryption": "keyid=p256dh;salt=" + testSalt + ";rs=4096", "crypto_key": "dh=" + testDH + ";p256ecdsa=" + testDH}},
		{name: "aesgcm without Encryption", header: map[string]string{"Content-Encoding": "aesgcm", "Crypto-Key": "dh=" + testDH}, body: make([]byte, 40), errno: 101},
		{name: "aesgcm without Crypto-Key", header: map[string]string{"Content-Encoding": "aesgcm", "Encryption": "salt=" + testSalt}, body: make([]byte, 40), errno: 101},
		{name: "aesgcm with only a VAPID key", header: map[string]string{"Content-Encoding": "aesgcm", "Encryption": "salt=" + testSalt, "Crypto-Key": "p256ecdsa=" + testDH}, body: make([]byte, 40), errno: 101},
		{name: "aesgcm short salt", header: map[string]string{"Content-Encoding": "aesgcm", "Encryption": "salt=AAAA", "Crypto-Key": "dh=" + testDH}, body: make([]byte, 40), errno: 110},
		{name: "aesgcm bad dh", header: map[string]string{"Content-Encoding": "aesgcm", "Encryption": "salt=" + testSalt, "Crypto-Key": "dh=!!!"}, body: make([]byte, 40), errno: 110},
		{name: "aesgcm body shorter than a record", header: map[string]string{"Content-Encoding": "aesgcm", "Encryption": "salt=" + testSalt, "Crypto-Key": "dh=" + testDH}, body: make([]byte, 17), errno: 110},
		{name: "no encoding", body: []byte("plain text"), errno: 110},
		{name: "unknown encoding", header: map[string]string{"Content-Encoding": "gzip"}, body: good, errno: 110},
		{name: "withdrawn aesgcm128", header: map[string]string{"Content-Encoding": "aesgcm128"}, body: good, errno: 110},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, err := parseEncoding(h, tc.body)
			if tc.errno != 0 {
				if err == nil || err.Errno != tc.errno || err.Status != http.StatusBadRequest {
					t.Fatalf("got %v, %v; want errno %d", got, err, tc.errno)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("headers %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("headers %v, want %v", got, tc.want)
				}
			}
		})
	}
}

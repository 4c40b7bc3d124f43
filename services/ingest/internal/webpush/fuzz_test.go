package webpush

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/herald-push/herald/pkg/ece"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/ingest/internal/apierr"
)

// FuzzParseHeaders feeds the header parsers of a push: TTL, Urgency, Topic and the
// content coding with its body. Every input is accepted with sane values or
// refused with a 400 and a documented errno. Seeds: testdata/fuzz/FuzzParseHeaders
// holds requests as web-push and webpush-go send them.
func FuzzParseHeaders(f *testing.F) {
	f.Add("60", "normal", "", "aes128gcm", "", "", aes128gcmBody(f, 120))
	f.Add("2419200", "high", "scores", "aesgcm", "salt="+testSalt, "dh="+testDH+";p256ecdsa="+testDH, make([]byte, 40))
	f.Add("-1", "urgent", "bad topic!", "gzip", "salt=", "dh=", []byte("x"))
	f.Add("", "", "", "", "", "", []byte{})
	const maxTTL = 5184000
	f.Fuzz(func(t *testing.T, ttl, urgency, topic, encoding, encryption, cryptoKey string, body []byte) {
		if v, err := parseTTL(ttl, maxTTL); err != nil {
			wantBadRequest(t, "TTL", err, apierr.ErrnoMissingTTL, apierr.ErrnoInvalidHeader)
		} else if v < 0 || v > maxTTL {
			t.Fatalf("TTL %q parsed as %d", ttl, v)
		}
		if u, err := parseUrgency(urgency); err != nil {
			wantBadRequest(t, "Urgency", err, apierr.ErrnoInvalidHeader)
		} else if u < heraldv1.Urgency_URGENCY_VERY_LOW || u > heraldv1.Urgency_URGENCY_HIGH {
			t.Fatalf("Urgency %q parsed as %v", urgency, u)
		}
		if v, err := parseTopic(topic); err != nil {
			wantBadRequest(t, "Topic", err, apierr.ErrnoInvalidTopic)
		} else if v != topic || len(v) > maxTopicLen {
			t.Fatalf("Topic %q parsed as %q", topic, v)
		}

		h := http.Header{}
		h.Set("Content-Encoding", encoding)
		h.Set("Encryption", encryption)
		h.Set("Crypto-Key", cryptoKey)
		headers, err := parseEncoding(h, body)
		if err != nil {
			wantBadRequest(t, "encoding", err, apierr.ErrnoInvalidCrypto, apierr.ErrnoMissingCryptoKeys)
			return
		}
		switch {
		case len(body) == 0:
			if headers != nil {
				t.Fatalf("headers %v for an empty body", headers)
			}
		case headers["encoding"] == "aes128gcm":
			hdr, err := ece.ParseHeader(body)
			if err != nil || len(body) < hdr.Len+minRecord || len(headers) != 1 {
				t.Fatalf("aes128gcm body %x accepted with headers %v: %v", body, headers, err)
			}
		case headers["encoding"] == "aesgcm":
			if _, err := ece.ParseAESGCMParams(headers["encryption"], headers["crypto_key"]); err != nil || len(body) < ece.AESGCMMinBodySize {
				t.Fatalf("aesgcm accepted with headers %v: %v", headers, err)
			}
		default:
			t.Fatalf("body accepted with headers %v", headers)
		}
	})
}

func wantBadRequest(t *testing.T, what string, err *apierr.Error, errnos ...int) {
	t.Helper()
	if err.Status != http.StatusBadRequest || err.Message == "" {
		t.Fatalf("%s refused with %d %q", what, err.Status, err.Message)
	}
	for _, e := range errnos {
		if err.Errno == e {
			return
		}
	}
	t.Fatalf("%s refused with errno %d, want one of %v", what, err.Errno, errnos)
}

// FuzzPush drives the whole handler, VAPID included, for a restricted
// subscription: it answers 201 only for a message that passes every check, and
// otherwise one of the documented refusals, never a server error, storing nothing.
func FuzzPush(f *testing.F) {
	fx := newFixture(f, true, 100)
	good := fx.sign(f, fx.appKey)
	f.Add(good, "", "60", "aes128gcm", aes128gcmBody(f, 200))
	// The same credentials in the legacy form.
	tok, key, _ := strings.Cut(strings.TrimPrefix(good, "vapid t="), ", k=")
	f.Add("WebPush "+tok, "p256ecdsa="+key, "60", "aes128gcm", aes128gcmBody(f, 200))
	f.Add("vapid t=a.b.c, k=BA1Hxzyi", "", "60", "aesgcm", make([]byte, 30))
	f.Add("", "", "", "", []byte(nil))
	allowed := map[int]bool{201: true, 400: true, 401: true, 403: true, 404: true, 413: true}
	f.Fuzz(func(t *testing.T, authorization, cryptoKey, ttl, encoding string, body []byte) {
		fx.router.routed = nil
		req, err := http.NewRequest(http.MethodPost, fx.endpoint, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"Authorization": authorization, "Crypto-Key": cryptoKey, "TTL": ttl, "Content-Encoding": encoding} {
			req.Header[k] = []string{v} // as sent, even if net/http would refuse to send it
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if routed := fx.router.count(); (rec.Code == http.StatusCreated) != (routed == 1) {
			t.Fatalf("status %d with %d messages routed", rec.Code, routed)
		}
	})
}

package webpush

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/herald-push/herald/pkg/ece"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/ingest/internal/apierr"
)

// parseTTL reads the TTL header (RFC 8030 §5.2): required, delta-seconds (digits
// only, RFC 9111 §1.2.2), clamped to maxTTL.
func parseTTL(v string, maxTTL int64) (int64, *apierr.Error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, apierr.New(http.StatusBadRequest, apierr.ErrnoMissingTTL, "missing TTL header")
	}
	// ParseInt alone would take "+5" and "-1".
	if strings.Trim(v, "0123456789") != "" {
		return 0, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidHeader, "TTL must be a non-negative integer of seconds")
	}
	ttl, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		// All digits but too large for int64: clamp like any other large TTL.
		return maxTTL, nil
	}
	return min(ttl, maxTTL), nil
}

// parseUrgency reads the Urgency header (RFC 8030 §5.3); normal when absent.
func parseUrgency(v string) (heraldv1.Urgency, *apierr.Error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "normal":
		return heraldv1.Urgency_URGENCY_NORMAL, nil
	case "very-low":
		return heraldv1.Urgency_URGENCY_VERY_LOW, nil
	case "low":
		return heraldv1.Urgency_URGENCY_LOW, nil
	case "high":
		return heraldv1.Urgency_URGENCY_HIGH, nil
	}
	return 0, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidHeader, "Urgency must be very-low, low, normal or high")
}

// maxTopicLen is the longest Topic RFC 8030 §5.4 allows.
const maxTopicLen = 32

// parseTopic reads the Topic header (RFC 8030 §5.4): at most 32 characters of the
// URL-safe base64 alphabet.
func parseTopic(v string) (string, *apierr.Error) {
	if v == "" {
		return "", nil
	}
	if len(v) > maxTopicLen {
		return "", apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidTopic, "Topic must be at most 32 characters")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidTopic, "Topic must use only the URL-safe base64 alphabet")
		}
	}
	return v, nil
}

// minRecord is the smallest aes128gcm record: a padding delimiter and the AEAD tag.
const minRecord = 1 + 16

// parseEncoding checks the body's content coding and returns the headers the user
// agent needs to decrypt it, with the names of the Mozilla protocol. An empty body is
// a push without data and needs none.
func parseEncoding(h http.Header, body []byte) (map[string]string, *apierr.Error) {
	if len(body) == 0 {
		return nil, nil
	}
	encryption, cryptoKey := strings.TrimSpace(h.Get("Encryption")), strings.TrimSpace(h.Get("Crypto-Key"))
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); enc {
	case "aes128gcm":
		// RFC 8188 §2.1: the body starts with salt, record size and key id, and at
		// least one record follows: a padding delimiter and the 16-byte tag.
		hdr, err := ece.ParseHeader(body)
		if err != nil {
			return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "body is not a valid aes128gcm message: "+err.Error())
		}
		if len(body) < hdr.Len+minRecord {
			return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "aes128gcm body holds a header but no record")
		}
		// aes128gcm carries its keys in the body (RFC 8291 §4); a salt or dh in
		// the headers means a sender mixing up the two codings, and the user
		// agent would decrypt with the wrong ones. Mozilla's service refuses
		// them too. A Crypto-Key with only p256ecdsa (legacy VAPID) is fine.
		if hasParam(encryption, "salt") || hasParam(cryptoKey, "dh") {
			return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "aes128gcm takes no Encryption salt or Crypto-Key dh: its keys are in the body")
		}
		return map[string]string{"encoding": "aes128gcm"}, nil
	case "aesgcm":
		// The draft form older libraries send: keys in Encryption and Crypto-Key,
		// which the user agent needs as they are.
		_, err := ece.ParseAESGCMParams(encryption, cryptoKey)
		if errors.Is(err, ece.ErrMissingParam) {
			return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoMissingCryptoKeys, "aesgcm needs Encryption with salt and Crypto-Key with dh: "+err.Error())
		}
		if err != nil {
			return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "invalid aesgcm Encryption or Crypto-Key header: "+err.Error())
		}
		if len(body) < ece.AESGCMMinBodySize {
			return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "aesgcm body is shorter than one record")
		}
		return map[string]string{"encoding": "aesgcm", "encryption": encryption, "crypto_key": cryptoKey}, nil
	case "":
		return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "a body needs Content-Encoding: aes128gcm")
	default:
		if len(enc) > 32 {
			enc = enc[:32] + "..."
		}
		return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "unsupported Content-Encoding "+strconv.Quote(enc)+"; use aes128gcm")
	}
}

// hasParam reports whether a header of ";"- or ","-separated name=value pairs has name.
func hasParam(header, name string) bool {
	for _, part := range strings.FieldsFunc(header, func(r rune) bool { return r == ';' || r == ',' }) {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) && strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

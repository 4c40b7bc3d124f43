package webpush

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/herald-push/herald/pkg/ece"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/ingest/internal/apierr"
)

// parseTTL reads the TTL header (RFC 8030 §5.2): required, a non-negative integer of
// seconds, clamped to maxTTL.
func parseTTL(v string, maxTTL int64) (int64, *apierr.Error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, apierr.New(http.StatusBadRequest, apierr.ErrnoMissingTTL, "missing TTL header")
	}
	ttl, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		if len(v) > 0 && strings.Trim(v, "0123456789") == "" {
			// All digits but too large for int64: clamp like any other large TTL.
			return maxTTL, nil
		}
		return 0, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidHeader, "TTL must be a non-negative integer of seconds")
	}
	if ttl < 0 {
		return 0, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidHeader, "TTL must be a non-negative integer of seconds")
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
		return "", apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidHeader, "Topic must be at most 32 characters")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidHeader, "Topic must use only the URL-safe base64 alphabet")
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
	enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding")))
	switch enc {
	case "aes128gcm":
		// RFC 8188 §2.1: the body starts with salt, record size and key id, and at
		// least one record follows: a padding delimiter and the 16-byte tag.
		h, err := ece.ParseHeader(body)
		if err != nil {
			return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "body is not a valid aes128gcm message: "+err.Error())
		}
		if len(body) < h.Len+minRecord {
			return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "aes128gcm body holds a header but no record")
		}
		return map[string]string{"encoding": "aes128gcm"}, nil
	case "aesgcm":
		// The draft form older libraries send: keys in Encryption and Crypto-Key.
		encryption, cryptoKey := h.Get("Encryption"), h.Get("Crypto-Key")
		if !hasParam(encryption, "salt") || !hasParam(cryptoKey, "dh") {
			return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoMissingCryptoKeys, "aesgcm needs Encryption with salt and Crypto-Key with dh")
		}
		return map[string]string{"encoding": "aesgcm", "encryption": encryption, "crypto_key": cryptoKey}, nil
	case "":
		return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "a body needs Content-Encoding: aes128gcm")
	}
	return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "unsupported Content-Encoding; use aes128gcm")
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

package ece

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The legacy "aesgcm" content coding of draft-ietf-httpbis-encryption-encoding-03
// with the Web Push key agreement of draft-ietf-webpush-encryption-04, which older
// sender libraries still send. Unlike aes128gcm its parameters travel in headers:
//
//	Content-Encoding: aesgcm
//	Encryption: salt=<base64url 16 bytes>[;rs=<record size>]
//	Crypto-Key: dh=<base64url application server public key>[;p256ecdsa=<VAPID key>]
//
// A push service passes both headers through to the user agent unchanged.

// AESGCMDefaultRecordSize is the record size of an aesgcm body when Encryption
// names none: the plaintext of every record but the last, padding included.
const AESGCMDefaultRecordSize = 4096

const (
	// aesgcmPadSize is the length of the big-endian padding length that opens
	// every aesgcm record.
	aesgcmPadSize = 2
	// AESGCMMinBodySize is the smallest aesgcm body: one record holding just the
	// padding length and the tag.
	AESGCMMinBodySize = aesgcmPadSize + tagSize

	aesgcmAuthInfo  = "Content-Encoding: auth\x00"
	aesgcmCEKInfo   = "Content-Encoding: aesgcm\x00"
	aesgcmNonceInfo = "Content-Encoding: nonce\x00"
	aesgcmKeyLabel  = "P-256"
)

// ErrMissingParam reports an aesgcm message whose Encryption header has no salt
// or whose Crypto-Key header has no dh.
var ErrMissingParam = errors.New("ece: missing aesgcm parameter")

// AESGCMParams are the parameters of an aesgcm message, from its Encryption and
// Crypto-Key headers.
type AESGCMParams struct {
	// Salt is Encryption's salt: 16 bytes.
	Salt []byte
	// RecordSize is Encryption's rs, AESGCMDefaultRecordSize if absent.
	RecordSize int
	// DH is Crypto-Key's dh: the application server's ephemeral public key, a
	// 65-byte uncompressed P-256 point.
	DH []byte
}

// ParseAESGCMParams reads the parameters of an aesgcm message from the values of
// its Encryption and Crypto-Key headers. Each header is a list of
// ";"-separated name=value parameters, possibly several lists separated by ","
// (draft-ietf-httpbis-encryption-encoding-03 §3, §4); the first salt, rs and dh
// found are used, other parameters (keyid, p256ecdsa) are ignored. Values may be
// quoted and base64url with or without padding.
//
// Errors wrap ErrMissingParam when salt or dh is absent, ErrBadHeader when a
// value does not decode or has the wrong size.
func ParseAESGCMParams(encryption, cryptoKey string) (AESGCMParams, error) {
	p := AESGCMParams{RecordSize: AESGCMDefaultRecordSize}
	salt, ok := headerParam(encryption, "salt")
	if !ok {
		return AESGCMParams{}, fmt.Errorf("%w: Encryption has no salt", ErrMissingParam)
	}
	dh, ok := headerParam(cryptoKey, "dh")
	if !ok {
		return AESGCMParams{}, fmt.Errorf("%w: Crypto-Key has no dh", ErrMissingParam)
	}
	var err error
	if p.Salt, err = decodeParam(salt); err != nil || len(p.Salt) != SaltSize {
		return AESGCMParams{}, fmt.Errorf("%w: salt is not %d bytes of base64url", ErrBadHeader, SaltSize)
	}
	if p.DH, err = decodeParam(dh); err != nil || len(p.DH) != KeySize || p.DH[0] != 0x04 {
		return AESGCMParams{}, fmt.Errorf("%w: dh is not an uncompressed P-256 point in base64url", ErrBadHeader)
	}
	if rs, ok := headerParam(encryption, "rs"); ok {
		n, err := strconv.Atoi(rs)
		if err != nil || n <= aesgcmPadSize || n > 1<<24 {
			return AESGCMParams{}, fmt.Errorf("%w: rs %q is not a record size above %d", ErrBadHeader, rs, aesgcmPadSize)
		}
		p.RecordSize = n
	}
	return p, nil
}

// headerParam returns the value of the first parameter called name in a header
// of ";"- and ","-separated name=value pairs, without quotes.
func headerParam(header, name string) (string, bool) {
	for _, part := range strings.FieldsFunc(header, func(r rune) bool { return r == ';' || r == ',' }) {
		k, v, ok := strings.Cut(part, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		if v == "" {
			continue
		}
		return v, true
	}
	return "", false
}

// decodeParam decodes base64url with or without padding.
func decodeParam(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// DecryptAESGCM decrypts an aesgcm body sent to the user agent holding uaPrivate
// and authSecret, with the parameters of its headers. It accepts any number of
// records and strips their padding.
//
// Errors wrap ErrTruncated, ErrDecrypt, ErrPadding or ErrBadKey.
func DecryptAESGCM(body []byte, p AESGCMParams, uaPrivate *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	if uaPrivate == nil || uaPrivate.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: user agent key is not a P-256 key", ErrBadKey)
	}
	if len(authSecret) != AuthSecretSize {
		return nil, fmt.Errorf("%w: auth secret is %d bytes, want %d", ErrBadKey, len(authSecret), AuthSecretSize)
	}
	if len(p.Salt) != SaltSize || p.RecordSize <= aesgcmPadSize {
		return nil, fmt.Errorf("%w: salt of %d bytes, record size %d", ErrBadKey, len(p.Salt), p.RecordSize)
	}
	asPublic, err := parsePublicKey(p.DH)
	if err != nil {
		return nil, fmt.Errorf("%w: dh: %w", ErrBadKey, err)
	}
	aead, baseNonce, err := aesgcmKeys(uaPrivate, asPublic, authSecret, uaPrivate.PublicKey().Bytes(), p.DH, p.Salt)
	if err != nil {
		return nil, fmt.Errorf("derive keys: %w", err)
	}
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrTruncated)
	}
	chunk := p.RecordSize + tagSize
	out := make([]byte, 0, len(body))
	var nonce [nonceSize]byte
	for seq := uint64(0); len(body) > 0; seq++ {
		// A record of the full size is never the last: a sender whose data ends
		// on a record boundary appends a record of padding only, so that a body
		// cut after a full record is detected (draft-03 §2).
		if len(body) == chunk {
			return nil, fmt.Errorf("%w: record %d is full but nothing follows", ErrTruncated, seq)
		}
		rec := body[:min(chunk, len(body))]
		body = body[len(rec):]
		if len(rec) < AESGCMMinBodySize {
			return nil, fmt.Errorf("%w: record %d is %d bytes, shorter than padding length and tag", ErrTruncated, seq, len(rec))
		}
		recordNonce(&nonce, baseNonce, seq)
		plain, err := aead.Open(nil, nonce[:], rec, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d", ErrDecrypt, seq)
		}
		pad := int(binary.BigEndian.Uint16(plain))
		if aesgcmPadSize+pad > len(plain) {
			return nil, fmt.Errorf("%w: record %d pads %d bytes of %d", ErrPadding, seq, pad, len(plain)-aesgcmPadSize)
		}
		for _, b := range plain[aesgcmPadSize : aesgcmPadSize+pad] {
			if b != 0 {
				return nil, fmt.Errorf("%w: record %d has non-zero padding", ErrPadding, seq)
			}
		}
		out = append(out, plain[aesgcmPadSize+pad:]...)
	}
	return out, nil
}

// aesgcmKeys derives the content-encryption key and base nonce of an aesgcm
// message (draft-ietf-webpush-encryption-04 §3.3, draft-03 §4.2): the ECDH
// secret is keyed with the auth secret, then expanded with the salt and a
// context naming both public keys.
func aesgcmKeys(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, authSecret, uaPublic, asPublic, salt []byte) (cipher.AEAD, []byte, error) {
	secret, err := priv.ECDH(peer)
	if err != nil {
		return nil, nil, fmt.Errorf("ecdh: %w", err)
	}
	ikm, err := hkdf.Key(sha256.New, secret, authSecret, aesgcmAuthInfo, ikmSize)
	if err != nil {
		return nil, nil, fmt.Errorf("auth ikm: %w", err)
	}
	// context = label || 0x00 || len(ua) || ua || len(as) || as, lengths as uint16.
	context := make([]byte, 0, len(aesgcmKeyLabel)+1+2+len(uaPublic)+2+len(asPublic))
	context = append(context, aesgcmKeyLabel...)
	context = append(context, 0)
	context = binary.BigEndian.AppendUint16(context, uint16(len(uaPublic)))
	context = append(context, uaPublic...)
	context = binary.BigEndian.AppendUint16(context, uint16(len(asPublic)))
	context = append(context, asPublic...)

	prk, err := hkdf.Extract(sha256.New, ikm, salt)
	if err != nil {
		return nil, nil, fmt.Errorf("extract PRK: %w", err)
	}
	cek, err := hkdf.Expand(sha256.New, prk, aesgcmCEKInfo+string(context), cekSize)
	if err != nil {
		return nil, nil, fmt.Errorf("expand CEK: %w", err)
	}
	nonce, err := hkdf.Expand(sha256.New, prk, aesgcmNonceInfo+string(context), nonceSize)
	if err != nil {
		return nil, nil, fmt.Errorf("expand nonce: %w", err)
	}
	aead, err := newGCM(cek)
	if err != nil {
		return nil, nil, err
	}
	return aead, nonce, nil
}

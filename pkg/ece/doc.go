// Package ece implements Message Encryption for Web Push (RFC 8291) on top
// of the "aes128gcm" encrypted content coding (RFC 8188).
//
// An application server calls [Encrypt] with the user agent's P-256 public
// key and 16-byte authentication secret, both taken from the push
// subscription. A user agent calls [Decrypt] with its private key and the
// same secret. A push service never decrypts; it may call [ParseHeader] to
// reject bodies whose content-coding header is malformed before storing them.
//
// Only the standard library is used: crypto/ecdh for the key agreement,
// crypto/hkdf with SHA-256 for key derivation and AES-128-GCM for the
// records.
package ece

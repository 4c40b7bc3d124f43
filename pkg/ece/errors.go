package ece

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these with
// detail; test for them with errors.Is.
var (
	// ErrTruncated reports a body that ends too early: inside the header,
	// inside a record's authentication tag, or after a record that is not
	// marked as the last one (RFC 8188 §2).
	ErrTruncated = errors.New("ece: truncated body")

	// ErrBadHeader reports a content-coding header that is well-sized but
	// invalid: a record size below 18, or a key id that is not a 65-byte
	// uncompressed P-256 point as RFC 8291 §4 requires.
	ErrBadHeader = errors.New("ece: bad content-coding header")

	// ErrDecrypt reports a record that fails AES-GCM authentication: the
	// body was altered, or it was encrypted for another key or secret.
	ErrDecrypt = errors.New("ece: decryption failed")

	// ErrPadding reports a record that authenticates but whose padding is
	// invalid: no delimiter, or the wrong delimiter for its position.
	ErrPadding = errors.New("ece: bad padding")

	// ErrBadKey reports an unusable key or authentication secret passed in
	// by the caller.
	ErrBadKey = errors.New("ece: bad key")

	// ErrTooLarge reports a plaintext that does not fit in the single
	// record RFC 8291 §4 allows for the chosen record size.
	ErrTooLarge = errors.New("ece: plaintext too large for record size")
)

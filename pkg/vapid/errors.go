package vapid

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these with
// detail; test for them with errors.Is.
var (
	// ErrMissing reports absent credentials: no Authorization header, or
	// one without a token or without a key.
	ErrMissing = errors.New("vapid: missing credentials")

	// ErrMalformed reports credentials that do not parse: an unknown
	// authorization scheme, bad header syntax, a token that is not a JWT,
	// or claims of the wrong type or without "exp".
	ErrMalformed = errors.New("vapid: malformed credentials")

	// ErrBadKey reports a key that is not a P-256 key in the expected
	// encoding.
	ErrBadKey = errors.New("vapid: bad key")

	// ErrBadSignature reports a token not signed with ES256 by the key
	// sent with it, including tokens using any other algorithm.
	ErrBadSignature = errors.New("vapid: bad signature")

	// ErrExpired reports a token whose "exp" has passed.
	ErrExpired = errors.New("vapid: token expired")

	// ErrLifetime reports a token whose "exp" is more than 24 hours ahead
	// (RFC 8292 §2).
	ErrLifetime = errors.New("vapid: token expires too late")

	// ErrAudience reports an "aud" claim other than the push service's
	// origin.
	ErrAudience = errors.New("vapid: wrong audience")

	// ErrSubject reports a "sub" claim that is not a mailto: or https: URI,
	// or a missing one where the Verifier requires it.
	ErrSubject = errors.New("vapid: bad subject")
)

package vapid

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// VerifierOptions are the policy choices of a Verifier.
type VerifierOptions struct {
	// RequireSubject rejects tokens without a "sub" claim. RFC 8292 §2.1
	// only says sub SHOULD be present; a malformed sub is always rejected.
	RequireSubject bool
	// Leeway is the clock skew tolerated in both "exp" checks: a token is
	// accepted until exp+Leeway, and exp may be up to 24h+Leeway ahead.
	Leeway time.Duration
}

// Verifier checks VAPID credentials for a push service. It caches
// successful verifications, keyed by the exact token and key strings, so
// that a token reused for many messages costs one signature check; the
// claims of a cached token are still checked on every call. A Verifier is
// safe for concurrent use.
type Verifier struct {
	opts   VerifierOptions
	cache  *verifiedCache
	parser *jwt.Parser

	// sigChecks counts signature verifications, for tests of the cache.
	sigChecks atomic.Int64
}

// NewVerifier returns a Verifier that remembers up to cacheSize verified
// tokens; zero or less disables the cache.
func NewVerifier(cacheSize int, opts VerifierOptions) *Verifier {
	return &Verifier{
		opts:  opts,
		cache: newVerifiedCache(cacheSize),
		// Only ES256 (RFC 8292 §2): this refuses "none", HS256 and the
		// rest before any key is used. Claims are checked below, with
		// this package's errors.
		parser: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}), jwt.WithoutClaimsValidation()),
	}
}

// Verify checks that cred's token is signed with ES256 by cred's key,
// names audience (the push service origin, scheme://host[:port]) as "aud",
// expires after now but at most 24 hours after it, and carries a valid
// "sub" if any (or at all, with RequireSubject). It returns the token's
// claims.
//
// Errors wrap ErrMissing, ErrMalformed, ErrBadKey, ErrBadSignature,
// ErrExpired, ErrLifetime, ErrAudience or ErrSubject.
func (v *Verifier) Verify(cred Credentials, audience string, now time.Time) (Claims, error) {
	if cred.Token == "" || cred.Key == "" {
		return Claims{}, fmt.Errorf("%w: no token or no key", ErrMissing)
	}
	k := cacheKey{cred.Token, cred.Key}
	if claims, ok := v.cache.get(k); ok {
		// The subject was checked before the entry was added and cannot
		// have changed; audience and time depend on this call.
		err := v.checkUse(claims, audience, now)
		if errors.Is(err, ErrExpired) {
			v.cache.remove(k)
		}
		if err != nil {
			return Claims{}, err
		}
		return claims, nil
	}

	claims, err := v.verifySignature(cred)
	if err != nil {
		return Claims{}, err
	}
	if err := v.checkUse(claims, audience, now); err != nil {
		return Claims{}, err
	}
	if err := v.checkSubject(claims.Subject); err != nil {
		return Claims{}, err
	}
	v.cache.add(k, claims)
	return claims, nil
}

// verifySignature checks the token's signature with cred.Key and returns
// its claims, not yet validated.
func (v *Verifier) verifySignature(cred Credentials) (Claims, error) {
	pub, err := DecodePublicKey(cred.Key)
	if err != nil {
		return Claims{}, err
	}
	v.sigChecks.Add(1)
	var rc jwt.RegisteredClaims
	_, err = v.parser.ParseWithClaims(cred.Token, &rc, func(*jwt.Token) (any, error) { return pub, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Claims{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Claims{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	default:
		return Claims{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}

	if rc.ExpiresAt == nil {
		return Claims{}, fmt.Errorf("%w: no exp claim", ErrMalformed)
	}
	// RFC 8292 §2 has a single origin; an array is only tolerated if it
	// holds exactly one.
	if len(rc.Audience) != 1 {
		return Claims{}, fmt.Errorf("%w: token has %d audiences, want 1", ErrAudience, len(rc.Audience))
	}
	return Claims{Audience: rc.Audience[0], Subject: rc.Subject, Expires: rc.ExpiresAt.UTC()}, nil
}

// checkUse validates claims against the expected audience and the time.
// It is cheap, so cached tokens go through it on every use.
func (v *Verifier) checkUse(c Claims, audience string, now time.Time) error {
	if audience == "" || c.Audience != audience {
		return fmt.Errorf("%w: token is for %q, this is %q", ErrAudience, c.Audience, audience)
	}
	if !now.Before(c.Expires.Add(v.opts.Leeway)) {
		return fmt.Errorf("%w: at %s", ErrExpired, c.Expires.UTC().Format(time.RFC3339))
	}
	if c.Expires.After(now.Add(MaxLifetime + v.opts.Leeway)) {
		return fmt.Errorf("%w: exp %s is more than %s ahead", ErrLifetime, c.Expires.UTC().Format(time.RFC3339), MaxLifetime)
	}
	return nil
}

// checkSubject validates the "sub" claim against RFC 8292 §2.1 and the
// Verifier's RequireSubject.
func (v *Verifier) checkSubject(sub string) error {
	switch {
	case sub == "" && v.opts.RequireSubject:
		return fmt.Errorf("%w: no sub claim", ErrSubject)
	case sub != "" && !validSubject(sub):
		return fmt.Errorf("%w: %q is not a mailto: or https: URI", ErrSubject, sub)
	}
	return nil
}

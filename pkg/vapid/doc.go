// Package vapid implements Voluntary Application Server Identification for
// Web Push (RFC 8292).
//
// An application server signs a short-lived ES256 JWT naming the push
// service's origin ([Sign]) and sends it with its public key in the
// Authorization header. A push service splits that header into
// [Credentials] ([ParseAuthorization]) and checks them with a [Verifier],
// which remembers tokens it has verified so that a token reused for many
// messages is checked once.
//
// Keys travel in the formats Web Push tooling uses: the public key as the
// base64url 65-byte uncompressed P-256 point, the private key as the
// base64url 32-byte scalar (what `web-push generate-vapid-keys` prints).
package vapid

package vapid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signToken signs claims with method and key, for tokens Sign would refuse
// to make.
func signToken(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	tb.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// goodClaims returns valid claims for testAudience at testNow, expiring an
// hour later.
func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{"aud": testAudience, "exp": testNow.Add(time.Hour).Unix(), "sub": "mailto:ops@example.com"}
}

// with returns a copy of c with claim name set to value, or removed if
// value is nil.
func with(c jwt.MapClaims, name string, value any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	if value == nil {
		delete(out, name)
	} else {
		out[name] = value
	}
	return out
}

func TestRFC8292Example(t *testing.T) {
	exp := time.Unix(1453523768, 0)
	for _, tc := range []struct {
		name, authorization, cryptoKey string
	}{
		{"vapid", "vapid t=" + rfcToken + ", k=" + rfcKey, ""},
		{"legacy", "WebPush " + rfcToken, "p256ecdsa=" + rfcKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred, err := ParseAuthorization(tc.authorization, tc.cryptoKey)
			if err != nil {
				t.Fatal(err)
			}
			v := NewVerifier(10, VerifierOptions{RequireSubject: true})
			claims, err := v.Verify(cred, "https://push.example.net", exp.Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if want := (Claims{"https://push.example.net", "mailto:push@example.com", exp.UTC()}); claims != want {
				t.Errorf("claims = %+v, want %+v", claims, want)
			}
			if _, err := v.Verify(cred, "https://push.example.net", exp); !errors.Is(err, ErrExpired) {
				t.Errorf("at exp: err = %v, want %v", err, ErrExpired)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	key, other := newKey(t), newKey(t)
	pub, otherPub := encodedPublic(t, key), encodedPublic(t, other)
	es256 := func(c jwt.MapClaims) string { return signToken(t, jwt.SigningMethodES256, key, c) }
	good := es256(goodClaims())
	tampered := strings.Split(good, ".")
	tampered[1] = strings.Split(es256(with(goodClaims(), "aud", "https://evil.example")), ".")[1]
	rawPub, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		token    string
		key      string
		audience string
		opts     VerifierOptions
		now      time.Time // zero: testNow
		wantErr  error
	}{
		{name: "good", token: good, key: pub},
		{name: "good, subject required", token: good, key: pub, opts: VerifierOptions{RequireSubject: true}},
		{name: "https subject", token: es256(with(goodClaims(), "sub", "https://example.com/contact")), key: pub},
		{name: "no subject", token: es256(with(goodClaims(), "sub", nil)), key: pub},
		{name: "exp exactly 24h ahead", token: es256(with(goodClaims(), "exp", testNow.Add(24*time.Hour).Unix())), key: pub},
		{name: "aud in a one-element array", token: es256(with(goodClaims(), "aud", []string{testAudience})), key: pub},
		{name: "expired within leeway", token: good, key: pub, now: testNow.Add(time.Hour + time.Second), opts: VerifierOptions{Leeway: time.Minute}},

		{name: "no token", key: pub, wantErr: ErrMissing},
		{name: "no key", token: good, wantErr: ErrMissing},
		{name: "key of someone else", token: good, key: otherPub, wantErr: ErrBadSignature},
		{name: "signed by someone else", token: signToken(t, jwt.SigningMethodES256, other, goodClaims()), key: pub, wantErr: ErrBadSignature},
		{name: "claims swapped", token: strings.Join(tampered, "."), key: pub, wantErr: ErrBadSignature},
		{name: "signature cut", token: good[:len(good)-4], key: pub, wantErr: ErrBadSignature},
		{name: "alg none", token: signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, goodClaims()) + "AAAA", key: pub, wantErr: ErrBadSignature},
		{name: "alg HS256 keyed with the public key", token: signToken(t, jwt.SigningMethodHS256, rawPub, goodClaims()), key: pub, wantErr: ErrBadSignature},
		{name: "alg ES384", token: signToken(t, jwt.SigningMethodES384, mustP384(t), goodClaims()), key: pub, wantErr: ErrBadSignature},
		{name: "bad key", token: good, key: "BA1Hxzyi", wantErr: ErrBadKey},
		{name: "not a JWT", token: "a.b.c", key: pub, wantErr: ErrMalformed},
		{name: "no exp", token: es256(with(goodClaims(), "exp", nil)), key: pub, wantErr: ErrMalformed},
		{name: "exp a string", token: es256(with(goodClaims(), "exp", "soon")), key: pub, wantErr: ErrMalformed},
		{name: "sub a number", token: es256(with(goodClaims(), "sub", 42)), key: pub, wantErr: ErrMalformed},
		{name: "wrong audience", token: good, key: pub, audience: "https://other.example", wantErr: ErrAudience},
		{name: "audience with trailing slash", token: es256(with(goodClaims(), "aud", testAudience+"/")), key: pub, wantErr: ErrAudience},
		{name: "audience of another port", token: good, key: pub, audience: testAudience + ":8443", wantErr: ErrAudience},
		{name: "no audience", token: es256(with(goodClaims(), "aud", nil)), key: pub, wantErr: ErrAudience},
		{name: "two audiences", token: es256(with(goodClaims(), "aud", []string{testAudience, "https://b.example"})), key: pub, wantErr: ErrAudience},
		{name: "empty expected audience", token: good, key: pub, audience: "-", wantErr: ErrAudience},
		{name: "expired", token: good, key: pub, now: testNow.Add(2 * time.Hour), wantErr: ErrExpired},
		{name: "at exp", token: good, key: pub, now: testNow.Add(time.Hour), wantErr: ErrExpired},
		{name: "exp in the past", token: es256(with(goodClaims(), "exp", testNow.Add(-time.Minute).Unix())), key: pub, wantErr: ErrExpired},
		{name: "exp over 24h ahead", token: es256(with(goodClaims(), "exp", testNow.Add(24*time.Hour+time.Second).Unix())), key: pub, wantErr: ErrLifetime},
		{name: "exp a year ahead", token: es256(with(goodClaims(), "exp", testNow.AddDate(1, 0, 0).Unix())), key: pub, wantErr: ErrLifetime},
		{name: "no subject, subject required", token: es256(with(goodClaims(), "sub", nil)), key: pub, opts: VerifierOptions{RequireSubject: true}, wantErr: ErrSubject},
		{name: "subject a bare address", token: es256(with(goodClaims(), "sub", "ops@example.com")), key: pub, wantErr: ErrSubject},
		{name: "subject http", token: es256(with(goodClaims(), "sub", "http://example.com")), key: pub, wantErr: ErrSubject},
		{name: "subject mailto without address", token: es256(with(goodClaims(), "sub", "mailto:")), key: pub, wantErr: ErrSubject},
		{name: "subject mailto with space", token: es256(with(goodClaims(), "sub", "mailto: ops@example.com")), key: pub, wantErr: ErrSubject},
		{name: "subject https without host", token: es256(with(goodClaims(), "sub", "https:/contact")), key: pub, wantErr: ErrSubject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			audience := tc.audience
			switch audience {
			case "":
				audience = testAudience
			case "-":
				audience = ""
			}
			now := tc.now
			if now.IsZero() {
				now = testNow
			}
			v := NewVerifier(10, tc.opts)
			claims, err := v.Verify(Credentials{Scheme: SchemeVAPID, Token: tc.token, Key: tc.key}, audience, now)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if claims != (Claims{}) {
					t.Errorf("claims %+v returned with error", claims)
				}
				if n := v.cache.len(); n != 0 {
					t.Errorf("failed verification left %d cache entries", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if claims.Audience != testAudience || claims.Expires.IsZero() {
				t.Errorf("claims = %+v", claims)
			}
		})
	}
}

func mustP384(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestVerifierCache(t *testing.T) {
	key := newKey(t)
	cred := Credentials{Scheme: SchemeVAPID, Token: signToken(t, jwt.SigningMethodES256, key, goodClaims()), Key: encodedPublic(t, key)}

	t.Run("reuse costs one signature check", func(t *testing.T) {
		v := NewVerifier(10, VerifierOptions{})
		for i := range 5 {
			if _, err := v.Verify(cred, testAudience, testNow.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		if n := v.sigChecks.Load(); n != 1 {
			t.Errorf("%d signature checks for 5 uses, want 1", n)
		}
	})

	t.Run("cached token still checks claims", func(t *testing.T) {
		v := NewVerifier(10, VerifierOptions{})
		if _, err := v.Verify(cred, testAudience, testNow); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(cred, "https://other.example", testNow); !errors.Is(err, ErrAudience) {
			t.Errorf("other audience: err = %v, want %v", err, ErrAudience)
		}
		if _, err := v.Verify(cred, testAudience, testNow.Add(-24*time.Hour)); !errors.Is(err, ErrLifetime) {
			t.Errorf("earlier clock: err = %v, want %v", err, ErrLifetime)
		}
		if n := v.sigChecks.Load(); n != 1 {
			t.Errorf("%d signature checks, want 1", n)
		}
	})

	t.Run("expired entry is dropped", func(t *testing.T) {
		v := NewVerifier(10, VerifierOptions{})
		if _, err := v.Verify(cred, testAudience, testNow); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(cred, testAudience, testNow.Add(time.Hour)); !errors.Is(err, ErrExpired) {
			t.Fatalf("err = %v, want %v", err, ErrExpired)
		}
		if n := v.cache.len(); n != 0 {
			t.Errorf("%d entries after expiry, want 0", n)
		}
	})

	t.Run("key is part of the cache key", func(t *testing.T) {
		v := NewVerifier(10, VerifierOptions{})
		if _, err := v.Verify(cred, testAudience, testNow); err != nil {
			t.Fatal(err)
		}
		forged := cred
		forged.Key = encodedPublic(t, newKey(t))
		if _, err := v.Verify(forged, testAudience, testNow); !errors.Is(err, ErrBadSignature) {
			t.Errorf("err = %v, want %v", err, ErrBadSignature)
		}
	})

	t.Run("failures are not cached", func(t *testing.T) {
		v := NewVerifier(10, VerifierOptions{})
		bad := cred
		bad.Key = encodedPublic(t, newKey(t))
		for range 3 {
			if _, err := v.Verify(bad, testAudience, testNow); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want %v", err, ErrBadSignature)
			}
		}
		if n := v.sigChecks.Load(); n != 3 {
			t.Errorf("%d signature checks, want 3", n)
		}
	})

	t.Run("least recently used is evicted", func(t *testing.T) {
		v := NewVerifier(2, VerifierOptions{})
		creds := make([]Credentials, 3)
		for i := range creds {
			creds[i] = cred
			creds[i].Token = signToken(t, jwt.SigningMethodES256, key, with(goodClaims(), "sub", fmt.Sprintf("mailto:%d@example.com", i)))
		}
		verify := func(i int) {
			t.Helper()
			if _, err := v.Verify(creds[i], testAudience, testNow); err != nil {
				t.Fatal(err)
			}
		}
		verify(0)
		verify(1)
		verify(0) // 1 is now the least recently used
		verify(2) // evicts 1
		if n := v.cache.len(); n != 2 {
			t.Errorf("%d entries, want 2", n)
		}
		before := v.sigChecks.Load()
		verify(0)
		verify(2)
		if n := v.sigChecks.Load() - before; n != 0 {
			t.Errorf("%d signature checks for cached tokens", n)
		}
		verify(1)
		if n := v.sigChecks.Load() - before; n != 1 {
			t.Errorf("%d signature checks for the evicted token, want 1", n)
		}
	})

	t.Run("no cache", func(t *testing.T) {
		v := NewVerifier(0, VerifierOptions{})
		for range 3 {
			if _, err := v.Verify(cred, testAudience, testNow); err != nil {
				t.Fatal(err)
			}
		}
		if n := v.sigChecks.Load(); n != 3 {
			t.Errorf("%d signature checks, want 3", n)
		}
	})

	t.Run("concurrent use", func(t *testing.T) {
		v := NewVerifier(4, VerifierOptions{})
		creds := make([]Credentials, 8)
		for i := range creds {
			creds[i] = cred
			creds[i].Token = signToken(t, jwt.SigningMethodES256, key, with(goodClaims(), "sub", fmt.Sprintf("mailto:%d@example.com", i)))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16*50)
		for g := range 16 {
			wg.Go(func() {
				for i := range 50 {
					if _, err := v.Verify(creds[(g+i)%len(creds)], testAudience, testNow); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := v.cache.len(); n > 4 {
			t.Errorf("%d entries in a cache of 4", n)
		}
	})
}

func benchmarkVerify(b *testing.B, cacheSize int) {
	key := newKey(b)
	header, err := Sign(key, testAudience, "mailto:ops@example.com", time.Now().Add(12*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	cred, err := ParseAuthorization(header, "")
	if err != nil {
		b.Fatal(err)
	}
	v := NewVerifier(cacheSize, VerifierOptions{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(cred, testAudience, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(v.sigChecks.Load())/float64(b.N), "sigchecks/op")
}

func BenchmarkVerifyCached(b *testing.B)   { benchmarkVerify(b, 1024) }
func BenchmarkVerifyUncached(b *testing.B) { benchmarkVerify(b, 0) }

func BenchmarkVerifyCachedParallel(b *testing.B) {
	key := newKey(b)
	header, err := Sign(key, testAudience, "mailto:ops@example.com", time.Now().Add(12*time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	cred, err := ParseAuthorization(header, "")
	if err != nil {
		b.Fatal(err)
	}
	v := NewVerifier(1024, VerifierOptions{})
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(cred, testAudience, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

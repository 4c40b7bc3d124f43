package vapid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const testAudience = "https://push.example.net"

var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// segmentJSON decodes segment i of a compact JWT into a map.
func segmentJSON(tb testing.TB, token string, i int) map[string]any {
	tb.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[i])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestSign(t *testing.T) {
	key := newKey(t)
	exp := testNow.Add(12 * time.Hour)
	header, err := Sign(key, testAudience, "mailto:ops@example.com", exp)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := ParseAuthorization(header, "")
	if err != nil {
		t.Fatalf("ParseAuthorization(%q): %v", header, err)
	}
	if cred.Scheme != SchemeVAPID || cred.Key != encodedPublic(t, key) {
		t.Errorf("credentials %+v", cred)
	}
	if want := "vapid t=" + cred.Token + ", k=" + cred.Key; header != want {
		t.Errorf("header = %q, want %q", header, want)
	}
	if h := segmentJSON(t, cred.Token, 0); h["alg"] != "ES256" || h["typ"] != "JWT" {
		t.Errorf("JWT header = %v", h)
	}
	// aud is a plain string, as in RFC 8292, not a one-element array.
	if c := segmentJSON(t, cred.Token, 1); c["aud"] != testAudience || c["sub"] != "mailto:ops@example.com" || c["exp"] != float64(exp.Unix()) {
		t.Errorf("JWT claims = %v", c)
	}
	claims, err := NewVerifier(0, VerifierOptions{RequireSubject: true}).Verify(cred, testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Claims{testAudience, "mailto:ops@example.com", exp}); claims != want {
		t.Errorf("claims = %+v, want %+v", claims, want)
	}
}

func TestSignWithoutSubject(t *testing.T) {
	header, err := Sign(newKey(t), testAudience, "", testNow.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := ParseAuthorization(header, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := segmentJSON(t, cred.Token, 1)["sub"]; ok {
		t.Error("empty subject written to the token")
	}
}

func TestSignErrors(t *testing.T) {
	key := newKey(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	exp := testNow.Add(time.Hour)
	for _, tc := range []struct {
		name     string
		key      *ecdsa.PrivateKey
		audience string
		subject  string
		expires  time.Time
		wantErr  error
	}{
		{name: "nil key", audience: testAudience, expires: exp, wantErr: ErrBadKey},
		{name: "P-384 key", key: p384, audience: testAudience, expires: exp, wantErr: ErrBadKey},
		{name: "empty audience", key: key, expires: exp, wantErr: ErrAudience},
		{name: "audience with path", key: key, audience: testAudience + "/wpush/v2/abc", expires: exp, wantErr: ErrAudience},
		{name: "audience with slash", key: key, audience: testAudience + "/", expires: exp, wantErr: ErrAudience},
		{name: "audience with query", key: key, audience: testAudience + "?", expires: exp, wantErr: ErrAudience},
		{name: "audience without scheme", key: key, audience: "push.example.net", expires: exp, wantErr: ErrAudience},
		{name: "audience ftp", key: key, audience: "ftp://push.example.net", expires: exp, wantErr: ErrAudience},
		{name: "subject not a URI", key: key, audience: testAudience, subject: "ops@example.com", expires: exp, wantErr: ErrSubject},
		{name: "subject http", key: key, audience: testAudience, subject: "http://example.com", expires: exp, wantErr: ErrSubject},
		{name: "no expiry", key: key, audience: testAudience, wantErr: ErrLifetime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Sign(tc.key, tc.audience, tc.subject, tc.expires)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v (header %q)", err, tc.wantErr, got)
			}
		})
	}
}

func BenchmarkSign(b *testing.B) {
	key := newKey(b)
	exp := time.Now().Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(key, testAudience, "mailto:ops@example.com", exp); err != nil {
			b.Fatal(err)
		}
	}
}

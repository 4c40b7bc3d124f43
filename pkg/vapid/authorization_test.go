package vapid

import (
	"errors"
	"strings"
	"testing"
)

// The token of the RFC 8292 §2.4 example, signed by rfcKey, for
// aud https://push.example.net, exp 1453523768, sub mailto:push@example.com.
const rfcToken = "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9." +
	"eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0." +
	"i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA"

func TestParseAuthorization(t *testing.T) {
	const tok, key = rfcToken, rfcKey
	vapid := Credentials{Scheme: SchemeVAPID, Token: tok, Key: key}
	webpush := Credentials{Scheme: SchemeWebPush, Token: tok, Key: key}
	for _, tc := range []struct {
		name          string
		authorization string
		cryptoKey     string
		want          Credentials
		wantErr       error
	}{
		{name: "rfc 8292 form", authorization: "vapid t=" + tok + ", k=" + key, want: vapid},
		{name: "no space after comma", authorization: "vapid t=" + tok + ",k=" + key, want: vapid},
		{name: "key first", authorization: "vapid k=" + key + ", t=" + tok, want: vapid},
		{name: "upper-case scheme and names", authorization: "VAPID T=" + tok + ", K=" + key, want: vapid},
		{name: "spaces everywhere", authorization: "  vapid   t = " + tok + " ,  k =  " + key + "  ", want: vapid},
		{name: "tabs", authorization: "vapid\tt=" + tok + ",\tk=" + key, want: vapid},
		{name: "quoted values", authorization: `vapid t="` + tok + `", k="` + key + `"`, want: vapid},
		{name: "empty list elements", authorization: "vapid , t=" + tok + ",, k=" + key + ",", want: vapid},
		{name: "unknown parameter", authorization: "vapid t=" + tok + ", x=y, k=" + key, want: vapid},
		{name: "padded key", authorization: "vapid t=" + tok + ", k=" + key + "=", want: Credentials{SchemeVAPID, tok, key + "="}},
		{name: "crypto-key ignored for vapid", authorization: "vapid t=" + tok + ", k=" + key, cryptoKey: "p256ecdsa=other", want: vapid},

		{name: "legacy", authorization: "WebPush " + tok, cryptoKey: "p256ecdsa=" + key, want: webpush},
		{name: "legacy lower case", authorization: "webpush " + tok, cryptoKey: "P256ECDSA=" + key, want: webpush},
		{name: "legacy with dh", authorization: "WebPush " + tok, cryptoKey: "dh=BNoRDbb84JGm8g5Z5CFxurSqsXWJ11ItfXEWYVLE85Y7;p256ecdsa=" + key, want: webpush},
		{name: "legacy comma list", authorization: "WebPush " + tok, cryptoKey: "keyid=p256dh;dh=abc, p256ecdsa=" + key, want: webpush},
		{name: "legacy spaced and quoted", authorization: "WebPush  " + tok + " ", cryptoKey: ` dh="abc" ; p256ecdsa = "` + key + `" `, want: webpush},
		{name: "legacy key repeated", authorization: "WebPush " + tok, cryptoKey: "p256ecdsa=" + key + ",p256ecdsa=" + key, want: webpush},

		{name: "empty", authorization: "", wantErr: ErrMissing},
		{name: "blank", authorization: " \t ", wantErr: ErrMissing},
		{name: "scheme only", authorization: "vapid", wantErr: ErrMissing},
		{name: "no key", authorization: "vapid t=" + tok, wantErr: ErrMissing},
		{name: "no token", authorization: "vapid k=" + key, wantErr: ErrMissing},
		{name: "legacy without crypto-key", authorization: "WebPush " + tok, wantErr: ErrMissing},
		{name: "legacy crypto-key without p256ecdsa", authorization: "WebPush " + tok, cryptoKey: "dh=abc", wantErr: ErrMissing},
		{name: "legacy without token", authorization: "WebPush", cryptoKey: "p256ecdsa=" + key, wantErr: ErrMissing},

		{name: "other scheme", authorization: "Bearer " + tok, wantErr: ErrMalformed},
		{name: "scheme glued to parameter", authorization: "vapidt=" + tok + ", k=" + key, wantErr: ErrMalformed},
		{name: "missing comma", authorization: "vapid t=" + tok + " k=" + key, wantErr: ErrMalformed},
		{name: "semicolon separator", authorization: "vapid t=" + tok + "; k=" + key, wantErr: ErrMalformed},
		{name: "parameter without value", authorization: "vapid t, k=" + key, wantErr: ErrMalformed},
		{name: "empty value", authorization: "vapid t=, k=" + key, wantErr: ErrMalformed},
		{name: "repeated token", authorization: "vapid t=" + tok + ", t=" + tok + ", k=" + key, wantErr: ErrMalformed},
		{name: "unterminated quote", authorization: `vapid t="` + tok + `, k=` + key, wantErr: ErrMalformed},
		{name: "escape in quotes", authorization: `vapid t="a\"b", k=` + key, wantErr: ErrMalformed},
		{name: "token of two segments", authorization: "vapid t=aaa.bbb, k=" + key, wantErr: ErrMalformed},
		{name: "token of four segments", authorization: "vapid t=" + tok + ".x, k=" + key, wantErr: ErrMalformed},
		{name: "token with empty segment", authorization: "vapid t=aaa..ccc, k=" + key, wantErr: ErrMalformed},
		{name: "token with padding", authorization: "vapid t=" + tok + "=, k=" + key, wantErr: ErrMalformed},
		{name: "token with plus", authorization: "vapid t=a+a.bbb.ccc, k=" + key, wantErr: ErrMalformed},
		{name: "token too long", authorization: "vapid t=" + strings.Repeat("a", maxTokenSize) + ".b.c, k=" + key, wantErr: ErrMalformed},
		{name: "legacy token with parameters", authorization: "WebPush " + tok + ", k=" + key, cryptoKey: "p256ecdsa=" + key, wantErr: ErrMalformed},
		{name: "legacy two keys", authorization: "WebPush " + tok, cryptoKey: "p256ecdsa=" + key + ";p256ecdsa=BBBB", wantErr: ErrMalformed},
		{name: "legacy broken crypto-key", authorization: "WebPush " + tok, cryptoKey: "dh;p256ecdsa=" + key, wantErr: ErrMalformed},

		{name: "short key", authorization: "vapid t=" + tok + ", k=BA1Hxzyi", wantErr: ErrBadKey},
		{name: "key not base64url", authorization: "vapid t=" + tok + ", k=" + strings.Replace(key, "-", "+", 1), wantErr: ErrBadKey},
		{name: "quoted key with a line break", authorization: `vapid t=` + tok + `, k="` + key[:40] + "\n" + key[40:] + `"`, wantErr: ErrBadKey},
		{name: "compressed key", authorization: "vapid t=" + tok + ", k=A" + key[1:], wantErr: ErrBadKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAuthorization(tc.authorization, tc.cryptoKey)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if got != (Credentials{}) {
					t.Errorf("credentials %+v returned with error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCredentialsPublicKey(t *testing.T) {
	c, err := ParseAuthorization("vapid t="+rfcToken+", k="+rfcKey, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 65 || b[0] != 0x04 {
		t.Errorf("PublicKey() = %x", b)
	}
}

func BenchmarkParseAuthorization(b *testing.B) {
	header := "vapid t=" + rfcToken + ", k=" + rfcKey
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAuthorization(header, ""); err != nil {
			b.Fatal(err)
		}
	}
}

package ece

import (
	"bytes"
	"errors"
	"testing"
)

func TestSecretsDecrypt(t *testing.T) {
	ua, auth, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	var s Secrets
	plain := []byte("a message to oneself")
	body, err := Encrypt(plain, ua.PublicKey().Bytes(), auth, WithSecrets(&s))
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 {
		t.Fatalf("Secrets holds %d after one Encrypt, want 1", s.Len())
	}
	got, err := s.Decrypt(body, ua, auth)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Fatalf("decrypted %q, want %q", got, plain)
	}
	if s.Len() != 0 {
		t.Fatalf("Secrets holds %d after Decrypt took its secret, want 0", s.Len())
	}
	// Without a remembered secret, Decrypt computes it.
	if got, err = s.Decrypt(body, ua, auth); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("second Decrypt: %q, %v", got, err)
	}
}

// A remembered secret does not let another user agent, or an altered body, through.
func TestSecretsDecryptRefuses(t *testing.T) {
	ua, auth, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	other, otherAuth, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	var s Secrets
	encrypt := func() []byte {
		body, err := Encrypt([]byte("for ua only"), ua.PublicKey().Bytes(), auth, WithSecrets(&s))
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	if _, err := s.Decrypt(encrypt(), other, otherAuth); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Decrypt by another user agent: %v, want ErrDecrypt", err)
	}
	if _, err := s.Decrypt(encrypt(), ua, otherAuth); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Decrypt with another auth secret: %v, want ErrDecrypt", err)
	}
	body := encrypt()
	body[len(body)-1] ^= 1
	if _, err := s.Decrypt(body, ua, auth); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Decrypt of an altered body: %v, want ErrDecrypt", err)
	}
}

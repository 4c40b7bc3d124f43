package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/herald-push/herald/pkg/token"
	"github.com/herald-push/herald/pkg/vapid"
)

// vapidKeyPair is the JSON npm web-push's `generate-vapid-keys --json` prints.
type vapidKeyPair struct {
	PublicKey  string `json:"publicKey"`
	PrivateKey string `json:"privateKey"`
}

// runVAPIDKeys prints a new VAPID key pair for an application server.
func runVAPIDKeys(_ context.Context, e env, args []string) error {
	fs := newFlagSet("vapid-keys", "",
		"Prints a new P-256 key pair for signing VAPID tokens, as npm web-push's\n"+
			"generate-vapid-keys --json does: {\"publicKey\":..., \"privateKey\":...}, both\n"+
			"base64url. The public key is the applicationServerKey of subscriptions; send\n"+
			"-vapid-key takes the private key, or the file this command's output is saved in.")
	if err := fs.parse(e, args); err != nil {
		return err
	}
	key, err := vapid.GenerateKey()
	if err != nil {
		return err
	}
	var pair vapidKeyPair
	if pair.PrivateKey, err = vapid.EncodePrivateKey(key); err != nil {
		return err
	}
	if pair.PublicKey, err = vapid.EncodePublicKey(&key.PublicKey); err != nil {
		return err
	}
	b, err := json.Marshal(pair)
	if err != nil {
		return fmt.Errorf("encode key pair: %w", err)
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", b)
	return err
}

// runTokenKey prints a new key for sealing push endpoint tokens.
func runTokenKey(_ context.Context, e env, args []string) error {
	fs := newFlagSet("token-key", "",
		"Prints a new random key for HERALD_TOKEN_KEYS, the keys ingest and the gateway\n"+
			"seal push endpoints with. Put the new key first to rotate; keep the old ones\n"+
			"after it until their endpoints are no longer in use.")
	if err := fs.parse(e, args); err != nil {
		return err
	}
	_, err := fmt.Fprintln(e.stdout, token.GenerateKey())
	return err
}

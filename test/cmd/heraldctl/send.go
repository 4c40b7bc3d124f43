package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/pkg/vapid"
)

// maxSubscriptionSize bounds what send reads as a subscription.
const maxSubscriptionSize = 64 << 10

// runSend encrypts a message for a subscription and posts it to its endpoint.
func runSend(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("send", "-sub <subscription> [flags]",
		"Acts as an application server: encrypts -text for the subscription (RFC 8291,\n"+
			"aes128gcm), signs a VAPID token for the endpoint's origin (RFC 8292) and posts the\n"+
			"message to the endpoint (RFC 8030). Prints the status and the message's Location;\n"+
			"when the push service refuses the message, prints its JSON error and exits 1.")
	subArg := fs.String("sub", "", "the subscription JSON `{\"endpoint\":...,\"keys\":{...}}`: a file, the JSON itself, or - for stdin (required)")
	text := fs.String("text", "hello", "the message")
	ttl := fs.Int("ttl", 60, "seconds the push service keeps the message while the user agent is away")
	urgency := fs.String("urgency", "", "Urgency header: very-low, low, normal or high (default: not sent, which means normal)")
	topic := fs.String("topic", "", "Topic header: a newer message with the same topic replaces one still waiting")
	keyArg := fs.String("vapid-key", "", "VAPID private key: the base64url key, a file holding it, or a file holding `heraldctl vapid-keys` output (default: a fresh key)")
	subject := fs.String("subject", "mailto:admin@example.com", "VAPID subject: a mailto: or https: contact for the push service's operator")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on the request")
	if err := fs.parse(e, args); err != nil {
		return err
	}
	if *subArg == "" {
		fmt.Fprintf(e.stderr, "%s: -sub is required\nrun '%s -h' for usage\n", fs.Name(), fs.Name())
		return errUsage
	}
	if *ttl < 0 {
		fmt.Fprintf(e.stderr, "%s: -ttl must not be negative\n", fs.Name())
		return errUsage
	}

	sub, err := readSubscription(*subArg, e.stdin)
	if err != nil {
		return err
	}
	key, err := vapidKey(*keyArg, e)
	if err != nil {
		return err
	}
	res, err := sender.Send(ctx, sub, []byte(*text), sender.Options{
		TTL:      *ttl,
		Urgency:  *urgency,
		Topic:    *topic,
		VAPIDKey: key,
		Subject:  *subject,
		Client:   &http.Client{Timeout: *timeout},
	})
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	fmt.Fprintln(e.stdout, res.Status, http.StatusText(res.Status))
	if res.Status < 200 || res.Status > 299 {
		if body := strings.TrimSpace(string(res.Body)); body != "" {
			fmt.Fprintln(e.stdout, body)
		}
		return fmt.Errorf("push service refused the message: %d %s", res.Status, http.StatusText(res.Status))
	}
	if res.Location != "" {
		fmt.Fprintln(e.stdout, "Location:", res.Location)
	}
	return nil
}

// readSubscription reads a subscription from a file, from the JSON itself, or from
// stdin for "-".
func readSubscription(arg string, stdin io.Reader) (sender.Subscription, error) {
	var (
		b   []byte
		err error
	)
	switch {
	case arg == "-":
		b, err = io.ReadAll(io.LimitReader(stdin, maxSubscriptionSize))
		if err != nil {
			return sender.Subscription{}, fmt.Errorf("read subscription from stdin: %w", err)
		}
	case strings.HasPrefix(strings.TrimSpace(arg), "{"):
		b = []byte(arg)
	default:
		if b, err = os.ReadFile(arg); err != nil {
			return sender.Subscription{}, fmt.Errorf("read subscription: %w", err)
		}
	}
	sub, err := sender.ParseSubscription(b)
	if err != nil {
		return sender.Subscription{}, err
	}
	u, err := url.Parse(sub.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return sender.Subscription{}, fmt.Errorf("subscription endpoint %q is not an http(s) URL", sub.Endpoint)
	}
	return sub, nil
}

// vapidKey loads the key -vapid-key names, or makes a fresh one.
func vapidKey(arg string, e env) (*ecdsa.PrivateKey, error) {
	if arg == "" {
		key, err := vapid.GenerateKey()
		if err != nil {
			return nil, err
		}
		pub, err := vapid.EncodePublicKey(&key.PublicKey)
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(e.stderr, "heraldctl send: signing with a fresh VAPID key; its public key is", pub)
		return key, nil
	}
	s := arg
	b, err := os.ReadFile(arg)
	switch {
	case err == nil:
		s = string(b)
	case errors.Is(err, os.ErrNotExist):
		// Not a file: the key itself.
	default:
		return nil, fmt.Errorf("-vapid-key: %w", err)
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		var pair vapidKeyPair
		if err := json.Unmarshal([]byte(s), &pair); err != nil {
			return nil, fmt.Errorf("-vapid-key: not a key pair: %w", err)
		}
		key, err := vapid.DecodePrivateKey(pair.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("-vapid-key: %w", err)
		}
		if pub, err := vapid.EncodePublicKey(&key.PublicKey); err != nil || (pair.PublicKey != "" && strings.TrimRight(pair.PublicKey, "=") != pub) {
			return nil, errors.New("-vapid-key: publicKey does not belong to privateKey")
		}
		return key, nil
	}
	key, err := vapid.DecodePrivateKey(s)
	if err != nil {
		return nil, fmt.Errorf("-vapid-key: neither a file nor a base64url private key: %w", err)
	}
	return key, nil
}

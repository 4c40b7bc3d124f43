// Package sender is an application server's side of Web Push: it encrypts a payload
// for a subscription (RFC 8291), signs VAPID (RFC 8292) and POSTs it to the push
// endpoint (RFC 8030 §5). heraldctl, the tests and the load tool use it.
package sender

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/vapid"
)

// Subscription is a push subscription as browsers hand it to application servers
// (PushSubscription.toJSON()).
type Subscription struct {
	Endpoint string `json:"endpoint"`
	Keys     Keys   `json:"keys"`
}

// Keys are the user agent's public key and auth secret, base64url.
type Keys struct {
	P256dh string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// ParseSubscription reads a subscription's JSON.
func ParseSubscription(b []byte) (Subscription, error) {
	var s Subscription
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("subscription: %w", err)
	}
	if s.Endpoint == "" || s.Keys.P256dh == "" || s.Keys.Auth == "" {
		return s, errors.New("subscription: endpoint, keys.p256dh and keys.auth are required")
	}
	return s, nil
}

// Options are the headers of one push.
type Options struct {
	TTL     int
	Urgency string
	Topic   string
	// VAPIDKey signs the request when set; Subject is its "sub" claim.
	VAPIDKey *ecdsa.PrivateKey
	Subject  string
	// Authorization, when set, is sent as is instead of signing with VAPIDKey: a
	// sender reusing one signed token for many messages, as real ones do.
	Authorization string
	// Client sends the request; http.DefaultClient when nil.
	Client *http.Client
	// Encrypt are options for ece.Encrypt (a load generator passes ece.WithSecrets).
	Encrypt []ece.Option
}

// Result is the push service's answer.
type Result struct {
	Status   int
	Location string
	// TTL is the TTL the push service applied, from its TTL header.
	TTL  string
	Body []byte
}

// Send encrypts payload for sub and posts it. A nil payload sends a push without data.
func Send(ctx context.Context, sub Subscription, payload []byte, opts Options) (Result, error) {
	var body []byte
	if payload != nil {
		uaPublic, err := decode(sub.Keys.P256dh)
		if err != nil {
			return Result{}, fmt.Errorf("keys.p256dh: %w", err)
		}
		auth, err := decode(sub.Keys.Auth)
		if err != nil {
			return Result{}, fmt.Errorf("keys.auth: %w", err)
		}
		if body, err = ece.Encrypt(payload, uaPublic, auth, opts.Encrypt...); err != nil {
			return Result{}, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("TTL", strconv.Itoa(opts.TTL))
	if body != nil {
		req.Header.Set("Content-Encoding", "aes128gcm")
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if opts.Urgency != "" {
		req.Header.Set("Urgency", opts.Urgency)
	}
	if opts.Topic != "" {
		req.Header.Set("Topic", opts.Topic)
	}
	if opts.Authorization != "" {
		req.Header.Set("Authorization", opts.Authorization)
	} else if opts.VAPIDKey != nil {
		aud, err := Origin(sub.Endpoint)
		if err != nil {
			return Result{}, err
		}
		auth, err := vapid.Sign(opts.VAPIDKey, aud, opts.Subject, time.Now().Add(12*time.Hour))
		if err != nil {
			return Result{}, err
		}
		req.Header.Set("Authorization", auth)
	}
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return Result{}, err
	}
	return Result{Status: resp.StatusCode, Location: resp.Header.Get("Location"), TTL: resp.Header.Get("TTL"), Body: respBody}, nil
}

// Origin returns scheme://host[:port] of an endpoint, the VAPID audience.
func Origin(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("endpoint %q is not an absolute URL", endpoint)
	}
	// RFC 6454 origins compare scheme and host case-insensitively; send them in lower case.
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), nil
}

func decode(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

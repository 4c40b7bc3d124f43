// Package rkey builds every Redis key Herald uses, in one place.
//
// Each per-user-agent key carries the uaid as a Redis Cluster hash tag ("{uaid}"), so
// that all keys of one user agent live in the same slot and a Lua script or MULTI may
// touch them together. A prefix in front of every key lets several installations (or
// tests) share one Redis.
package rkey

import "github.com/herald-push/herald/pkg/ids"

// Keys builds keys under one prefix.
type Keys struct {
	prefix string
}

// New returns the key builder for prefix (may be empty).
func New(prefix string) Keys { return Keys{prefix: prefix} }

// Prefix returns the prefix every key starts with.
func (k Keys) Prefix() string { return k.prefix }

// Queue is the Redis Stream holding a user agent's waiting messages.
func (k Keys) Queue(u ids.UAID) string { return k.prefix + "q:{" + u.String() + "}" }

// Topics is the hash of a user agent's waiting messages by channel and Topic.
func (k Keys) Topics(u ids.UAID) string { return k.prefix + "t:{" + u.String() + "}" }

// Changes is the hash of a user agent's recent subscription changes, by channel
// id: a tombstone for a channel just unregistered, or the application server key
// of one just registered. The router reads it where it stores or delivers a message.
func (k Keys) Changes(u ids.UAID) string { return k.prefix + "sc:{" + u.String() + "}" }

// Owner is the hash recording which gateway holds the user agent's connection.
func (k Keys) Owner(u ids.UAID) string { return k.prefix + "o:{" + u.String() + "}" }

// RateSubscription is the rate-limit state (a GCRA theoretical arrival time) of
// one subscription: messages accepted for channel ch of user agent u. It shares
// the user agent's hash slot, so the router's queue scripts count it where they
// store or admit the message (package queue, Limit).
func (k Keys) RateSubscription(u ids.UAID, ch ids.ChannelID) string {
	return k.prefix + "rl:s:{" + u.String() + "}:" + ch.String()
}

// RateVAPIDKey is the rate-limit state of one application server key, named by a
// fingerprint of the key (hex, no braces). The fingerprint is the hash tag, so the
// keys of many application servers spread over a cluster's slots.
func (k Keys) RateVAPIDKey(fingerprint string) string {
	return k.prefix + "rl:k:{" + fingerprint + "}"
}

// Gateways is the sorted set of live gateways (member: id, score: last heartbeat ms).
func (k Keys) Gateways() string { return k.prefix + "gateways" }

// Gateway is the hash describing one gateway (its gRPC address).
func (k Keys) Gateway(id string) string { return k.prefix + "gw:" + id }

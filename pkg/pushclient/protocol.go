package pushclient

import (
	"context"
	"fmt"
	"net/http"

	"github.com/herald-push/herald/pkg/mozproto"
)

// HelloWith sends a hello frame as given (its Type is set) and returns the reply, for
// clients that follow broadcasts or set an urgency bar from the start.
func (c *Client) HelloWith(ctx context.Context, m mozproto.ClientMessage) (mozproto.HelloReply, error) {
	var r mozproto.HelloReply
	m.Type = mozproto.TypeHello
	err := c.Send(ctx, m)
	if err == nil {
		err = c.reply(ctx, &r)
	}
	if err == nil && (r.Type != mozproto.TypeHello || r.Status != http.StatusOK) {
		err = fmt.Errorf("hello refused: type %q status %d", r.Type, r.Status)
	}
	return r, err
}

// SetUrgency states the lowest urgency (mozproto.UrgencyVeryLow … UrgencyHigh) the
// user agent wants delivered now, and returns the gateway's answer.
func (c *Client) SetUrgency(ctx context.Context, min string) (mozproto.UrgencyReply, error) {
	var r mozproto.UrgencyReply
	err := c.Send(ctx, mozproto.ClientMessage{Type: mozproto.TypeUrgency, Min: min})
	if err == nil {
		err = c.reply(ctx, &r)
	}
	if err == nil && r.Type != mozproto.TypeUrgency {
		err = fmt.Errorf("urgency: got %q", r.Type)
	}
	return r, err
}

// SubscribeBroadcasts asks for broadcasts (id → the version the client has) and
// waits for the gateway's answer. The gateway answers only when it has something to
// say (a newer version, or ids it does not define); otherwise this waits until ctx
// ends.
func (c *Client) SubscribeBroadcasts(ctx context.Context, broadcasts map[string]string) (r mozproto.BroadcastReply, err error) {
	if err := c.Send(ctx, mozproto.ClientMessage{Type: mozproto.TypeBroadcastSubscribe, Broadcasts: broadcasts}); err != nil {
		return r, err
	}
	if err := c.reply(ctx, &r); err != nil {
		return r, err
	}
	if r.Type != mozproto.TypeBroadcast {
		return r, fmt.Errorf("broadcast_subscribe: got %q", r.Type)
	}
	return r, nil
}

// AckCode acknowledges one notification with a code (mozproto.AckDelivered,
// AckDecryptionError, AckNotDelivered), as Firefox does.
func (c *Client) AckCode(ctx context.Context, n mozproto.Notification, code int) error {
	return c.Send(ctx, mozproto.ClientMessage{Type: mozproto.TypeAck, Updates: []mozproto.Update{{ChannelID: n.ChannelID, Version: n.Version, Code: code}}})
}

// Nack reports that the service worker failed on a notification (mozproto.Nack…
// codes), as Firefox does after acknowledging it.
func (c *Client) Nack(ctx context.Context, n mozproto.Notification, code int) error {
	return c.Send(ctx, mozproto.ClientMessage{Type: mozproto.TypeNack, Version: n.Version, Code: code})
}

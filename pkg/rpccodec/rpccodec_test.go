package rpccodec

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// message is a herald.v1 Message with every field set, maps of several entries
// among them.
func message(data []byte) *heraldv1.Message {
	return &heraldv1.Message{
		Uaid:           "0123456789abcdef0123456789abcdef",
		ChannelId:      "5f8c2a1e-0b7d-4c3e-9a61-2d4f8e7b9c10",
		Id:             "1733140000000-7",
		Data:           data,
		Headers:        map[string]string{"encoding": "aesgcm", "encryption": "salt=abc", "crypto_key": "dh=xyz"},
		TtlSeconds:     60,
		ReceivedUnixMs: 1733140000000,
		Urgency:        heraldv1.Urgency_URGENCY_HIGH,
		Topic:          "scores",
		Stored:         true,
		Trace:          map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=v"},
	}
}

// batches are the messages that cross between the services, as they do.
func batches() []proto.Message {
	big := bytes.Repeat([]byte{0xa5}, 4096) // past grpc's buffer-pooling threshold
	return []proto.Message{
		&heraldv1.RouteBatchRequest{Seq: 7, TimeoutMs: 5000, Requests: []*heraldv1.RouteRequest{
			{Message: message([]byte("a push message")), AppServerKey: []byte{4, 1, 2, 3}, SubscriptionLimit: &heraldv1.RateLimit{Count: 10, PeriodUs: 1e6}},
			{Message: message(big)},
			{Message: &heraldv1.Message{}},
		}},
		&heraldv1.RouteBatchResponse{Seq: 7, Results: []*heraldv1.RouteResult{
			{Response: &heraldv1.RouteResponse{Id: "1-0", Stored: true, Delivered: true}},
			{Code: 8, Error: "too many messages for this subscription", RetryAfterMs: 1500},
		}},
		&heraldv1.DeliverBatchRequest{Seq: 1, Requests: []*heraldv1.DeliverRequest{{Message: message(nil), Epoch: 42}}},
		&heraldv1.DeliverBatchResponse{Accepted: []bool{true, false, true}, Seq: 1, Control: heraldv1.StreamControl_STREAM_CONTROL_DRAIN},
		&heraldv1.EvictRequest{Uaid: "0123456789abcdef0123456789abcdef", Epoch: 3},
		&heraldv1.RouteBatchRequest{},
	}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	bs, err := Codec{}.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%T): %v", v, err)
	}
	defer bs.Free()
	return bs.Materialize()
}

// What the codec writes, protobuf's own decoder reads as the same message; what
// protobuf's encoder writes, the codec reads as the same message.
func TestSameWireAsProtobuf(t *testing.T) {
	for _, m := range batches() {
		t.Run(string(proto.MessageName(m).Name()), func(t *testing.T) {
			got := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(marshal(t, m), got); err != nil {
				t.Fatalf("protobuf cannot read the codec's bytes: %v", err)
			}
			if !proto.Equal(got, m) {
				t.Fatalf("protobuf read %v\nwant %v", got, m)
			}

			want, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			back := m.ProtoReflect().New().Interface()
			if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(want)}, back); err != nil {
				t.Fatalf("the codec cannot read protobuf's bytes: %v", err)
			}
			if !proto.Equal(back, m) {
				t.Fatalf("the codec read %v\nwant %v", back, m)
			}
		})
	}
}

// A field this build does not know (a newer peer's) survives a pass through it,
// as it would through protobuf.
func TestUnknownFieldsKept(t *testing.T) {
	b, err := proto.Marshal(&heraldv1.EvictRequest{Uaid: "u", Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 99, protowire.BytesType)
	b = protowire.AppendString(b, "from a newer peer")
	var m heraldv1.EvictRequest
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &m); err != nil {
		t.Fatal(err)
	}
	if m.GetUaid() != "u" || m.GetEpoch() != 1 {
		t.Fatalf("read %v", &m)
	}
	if out := marshal(t, &m); !bytes.Equal(out, b) {
		t.Fatalf("re-encoded %x, want %x", out, b)
	}
}

// The decoded message holds no reference to the buffer it was read from, which goes
// back to grpc's pool.
func TestUnmarshalCopies(t *testing.T) {
	b, err := proto.Marshal(message([]byte("a push message")))
	if err != nil {
		t.Fatal(err)
	}
	var m heraldv1.Message
	if err := (Codec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &m); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if !proto.Equal(&m, message([]byte("a push message"))) {
		t.Fatalf("the message changed with its buffer: %v", &m)
	}
}

func TestMalformedInputRefused(t *testing.T) {
	good, err := proto.Marshal(batches()[0])
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"truncated":     good[:20],
		"bad wire type": {0x0f},
		"huge length":   {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		t.Run(name, func(t *testing.T) {
			var m heraldv1.RouteBatchRequest
			err := Codec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &m)
			if err == nil || !strings.Contains(err.Error(), "rpccodec") {
				t.Fatalf("Unmarshal = %v, want an rpccodec error", err)
			}
		})
	}
}

// Messages without the generated methods (grpc's health service's) go through
// grpc's proto codec; a server and a client with the codec talk over a real
// socket, as the services do.
func TestOverGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(ServerOption())
	hs := health.NewServer()
	hs.SetServingStatus("herald", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	heraldv1.RegisterGatewayServer(srv, echoGateway{})
	go func() { _ = srv.Serve(ln) }() // returns when Stop closes the listener
	t.Cleanup(srv.Stop)

	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), DialOption())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	ctx := t.Context()

	st, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "herald"})
	if err != nil || st.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check = %v, %v", st, err)
	}
	req := batches()[2].(*heraldv1.DeliverBatchRequest)
	resp, err := heraldv1.NewGatewayClient(cc).DeliverBatch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// echoGateway accepts the messages whose headers and trace came through whole.
	if len(resp.GetAccepted()) != 1 || !resp.GetAccepted()[0] {
		t.Fatalf("DeliverBatch = %v", resp)
	}
}

type echoGateway struct {
	heraldv1.UnimplementedGatewayServer
}

func (echoGateway) DeliverBatch(_ context.Context, req *heraldv1.DeliverBatchRequest) (*heraldv1.DeliverBatchResponse, error) {
	out := &heraldv1.DeliverBatchResponse{}
	for _, r := range req.GetRequests() {
		out.Accepted = append(out.Accepted, proto.Equal(r.GetMessage(), message(nil)) && r.GetEpoch() == 42)
	}
	return out, nil
}

// FuzzMarshal: whatever RouteBatchRequest protobuf reads from the fuzzer's bytes
// (unknown fields, empty maps, odd strings and all), the codec encodes to bytes of
// protobuf's size that protobuf reads back as the same message.
func FuzzMarshal(f *testing.F) {
	for _, m := range batches() {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m heraldv1.RouteBatchRequest
		if proto.Unmarshal(b, &m) != nil {
			return // not a message: nothing to encode
		}
		out := marshal(t, &m)
		if len(out) != proto.Size(&m) {
			t.Fatalf("encoded %d bytes, protobuf's size is %d", len(out), proto.Size(&m))
		}
		var back heraldv1.RouteBatchRequest
		if err := proto.Unmarshal(out, &back); err != nil {
			t.Fatalf("protobuf cannot read the codec's bytes: %v", err)
		}
		if !proto.Equal(&back, &m) {
			t.Fatalf("protobuf read back %v, want %v", &back, &m)
		}
	})
}

// BenchmarkMarshal compares the codec with grpc's proto codec on a batch of 32
// messages as ingest sends it.
func BenchmarkMarshal(b *testing.B) {
	req := &heraldv1.RouteBatchRequest{}
	for range 32 {
		req.Requests = append(req.Requests, &heraldv1.RouteRequest{Message: message(bytes.Repeat([]byte{1}, 120)), AppServerKey: make([]byte, 65)})
	}
	for _, c := range []struct {
		name  string
		codec interface {
			Marshal(any) (mem.BufferSlice, error)
		}
	}{{"vtproto", Codec{}}, {"grpc-proto", fallback}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bs, err := c.codec.Marshal(req)
				if err != nil {
					b.Fatal(err)
				}
				bs.Free()
			}
		})
	}
}

// Package rpccodec is the gRPC codec between Herald's services. It encodes
// herald.v1's messages with the methods protoc-gen-go-vtproto generates beside
// protoc-gen-go's (SizeVT, MarshalToSizedBufferVT), and decodes every message, and
// encodes every other one (grpc's health service, for one), with grpc's own proto
// codec.
//
// The wire format is protobuf's: a service with this codec talks to one without
// it. What changes is the cost of encoding. The reflective encoder of
// google.golang.org/protobuf walks herald.v1.Message's two map fields (headers,
// trace) through reflect.NewAt and reflect's pointer-type cache (a sync.Map) for
// every entry: in the router that was about a fifth of its CPU profile under load.
//
// Decoding stays protobuf's: vtprotobuf's generated decoder accepts malformed input
// that protobuf refuses (a map entry whose value runs past the entry's end, strings
// that are not UTF-8, field numbers past 2^29), and decoding was the smaller cost.
//
// Its name is grpc's "proto", so that peers agree on the content-subtype; it is
// set per server and per client (ServerOption, DialOption), never registered
// globally.
package rpccodec

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the fallback codec
	"google.golang.org/grpc/mem"
)

// vtMessage is what protoc-gen-go-vtproto generates for every herald.v1 message.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT(dAtA []byte) (int, error)
}

// Codec is the codec; the zero value is ready.
type Codec struct{}

var _ encoding.CodecV2 = Codec{}

// fallback is grpc's proto codec: every decode, and the encoding of messages
// without the generated methods.
var fallback = encoding.GetCodecV2("proto")

// Name is grpc's proto codec's name: the same content-subtype on the wire.
func (Codec) Name() string { return "proto" }

// Marshal encodes v into one buffer, from grpc's pool when it is large enough to
// be worth pooling (as grpc's own codec does).
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(vtMessage)
	if !ok {
		return fallback.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		if _, err := m.MarshalToSizedBufferVT(buf); err != nil {
			return nil, fmt.Errorf("rpccodec: marshal %T: %w", v, err)
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVT((*buf)[:size]); err != nil {
		pool.Put(buf)
		return nil, fmt.Errorf("rpccodec: marshal %T: %w", v, err)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// Unmarshal decodes data into v with grpc's proto codec.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	if err := fallback.Unmarshal(data, v); err != nil {
		return fmt.Errorf("rpccodec: unmarshal %T: %w", v, err)
	}
	return nil
}

// ServerOption has a gRPC server use the codec.
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodecV2(Codec{}) }

// DialOption has a gRPC client use the codec on every call.
func DialOption() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.ForceCodecV2(Codec{}))
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestMain lets the test binary be the floor's server process, which runFloor
// starts as "<its own executable> floor -serve …".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		if err := runFloor(context.Background(), os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The floor runs each server in a process of its own, loads it over real sockets
// (HTTP, WebSocket, gRPC), and reports what was completed and what it cost.
func TestFloor(t *testing.T) {
	completed := regexp.MustCompile(`(?m)^completed: (\d+)/s$`)
	cost := regexp.MustCompile(`(?m)^server: (\d+\.\d+) CPU-s per 1,000`)
	for _, args := range [][]string{
		{"-proto", "http"},
		{"-proto", "http", "-server", "lean", "-raw=false"},
		{"-proto", "ws", "-conns", "20"},
		{"-proto", "grpc", "-batch", "4"},
	} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			var out bytes.Buffer
			args := append(args, "-rate", "400", "-warmup", "300ms", "-duration", "1s")
			if err := runFloor(context.Background(), args, &out); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			m := completed.FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("no completed rate in:\n%s", out.String())
			}
			if n, _ := strconv.Atoi(m[1]); n < 200 || n > 600 { // wide: other tests share the cores
				t.Errorf("completed %d/s at an offered 400/s:\n%s", n, out.String())
			}
			if cost.FindStringSubmatch(out.String()) == nil {
				t.Errorf("no server cost in:\n%s", out.String())
			}
		})
	}
	for _, args := range [][]string{{"-proto", "smtp"}, {"-proto", "grpc", "-batch", "0"}} {
		if err := runFloor(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
}

// Command gateway holds user agents' connections and delivers their messages.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/herald-push/herald/pkg/flagenv"
	"github.com/herald-push/herald/services/gateway/internal/app"
)

func main() {
	var cfg app.Config
	fs := flag.NewFlagSet("gateway", flag.ExitOnError)
	cfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	log := cfg.Log.New(os.Stderr, "gateway")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal ends the process at once.
		<-ctx.Done()
		stop()
	}()
	if err := app.Run(ctx, cfg, log); err != nil {
		log.Error("exit", "err", err)
		os.Exit(1)
	}
}

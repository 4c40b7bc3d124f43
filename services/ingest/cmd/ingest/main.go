// Command ingest is the HTTP endpoint application servers send push messages to.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/herald-push/herald/pkg/flagenv"
	"github.com/herald-push/herald/services/ingest/internal/app"
)

func main() {
	var cfg app.Config
	fs := flag.NewFlagSet("ingest", flag.ExitOnError)
	cfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(2)
	}
	log := cfg.Log.New(os.Stderr, "ingest")
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

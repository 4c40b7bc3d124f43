package service

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/herald-push/herald/pkg/flagenv"
	"github.com/herald-push/herald/pkg/logging"
)

// Config is a service's configuration as Main needs it.
type Config interface {
	RegisterFlags(fs *flag.FlagSet)
	Validate() error
	// Logging returns the log settings.
	Logging() *logging.Config
}

// Main is the body of a service's main: it parses the flags (and their HERALD_*
// twins) into cfg, builds the logger, runs run until SIGINT or SIGTERM, and returns
// the exit code for os.Exit: 0, 1 when run failed, 2 for a bad configuration. A
// second signal ends the process at once.
func Main[C Config](name string, cfg C, args []string, stderr io.Writer, run func(context.Context, C, *slog.Logger) error) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, args, nil); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	log := cfg.Logging().New(stderr, name)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		// Once the first signal arrived, the default handling returns: the next one
		// ends the process.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("exit", "err", err)
		return 1
	}
	return 0
}

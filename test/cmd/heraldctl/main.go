// Command heraldctl is a tool for trying Herald by hand and from the e2e tests: it
// acts as a user agent (listen), as an application server (send), and makes the keys
// the services and application servers need (vapid-keys, token-key).
//
// Every flag also reads its environment twin: -gateway ↔ HERALD_GATEWAY. A flag
// given on the command line beats the environment, which beats the default.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/herald-push/herald/pkg/flagenv"
)

// env is what a subcommand gets of the process: its streams and environment.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

var commands = []command{
	{"listen", "act as a user agent: subscribe and print the messages received", runListen},
	{"send", "act as an application server: encrypt and send a message to a subscription", runSend},
	{"vapid-keys", "print a new VAPID key pair as JSON", runVAPIDKeys},
	{"token-key", "print a new key for HERALD_TOKEN_KEYS", runTokenKey},
}

// errUsage marks a mistake on the command line; main exits 2 for it.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks for a clean exit; stopping the relay then lets a second
	// one end heraldctl at once, should saying goodbye to the gateway hang.
	context.AfterFunc(ctx, stop)
	err := run(ctx, env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "heraldctl:", err)
		os.Exit(1)
	}
}

// run dispatches to the subcommand named by args[0].
func run(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		usage(e.stderr)
		return errUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(e.stdout)
		return nil
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "heraldctl: unknown command %q\n\n", name)
	usage(e.stderr)
	return errUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: heraldctl <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "  help        print this help")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'heraldctl <command> -h' for the flags of a command. Every flag also")
	fmt.Fprintln(w, "reads its environment twin: -gateway ↔ HERALD_GATEWAY.")
}

// flagSet is the flags of one subcommand.
type flagSet struct {
	*flag.FlagSet
	synopsis string
	about    string
}

// newFlagSet returns the flags of subcommand name; synopsis follows the name in
// its usage line, about explains the command below it.
func newFlagSet(name, synopsis, about string) flagSet {
	fs := flag.NewFlagSet("heraldctl "+name, flag.ContinueOnError)
	// parse prints every error itself, the environment's included, which flag knows
	// nothing of.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return flagSet{FlagSet: fs, synopsis: synopsis, about: about}
}

// parse parses args and the environment twins, and refuses positional arguments.
// -h prints the usage to stdout and returns flag.ErrHelp.
func (fs flagSet) parse(e env, args []string) error {
	err := flagenv.Parse(fs.FlagSet, args, e.getenv)
	if errors.Is(err, flag.ErrHelp) {
		fs.printUsage(e.stdout)
		return err
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "%s: %v\nrun '%s -h' for usage\n", fs.Name(), err, fs.Name())
		return errUsage
	}
	return nil
}

func (fs flagSet) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace(fs.Name()+" "+fs.synopsis), fs.about)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if !hasFlags {
		return
	}
	fmt.Fprintln(w, "\nflags (each also read from HERALD_<NAME>, e.g. -vapid-key from HERALD_VAPID_KEY):")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
)

// Exit codes shared by every tool.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

// exitRequest carries kong's request to exit (after --help, or a parse error)
// out of kong through a panic, so that the process never exits from inside it.
type exitRequest struct{ code int }

// Parse parses args into grammar (a kong CLI struct pointer). Help and usage
// errors are written to stderr, never stdout. It returns done=true with the
// code to exit with when the tool must stop here: 0 after --help, ExitUsage on a
// parse error (kong's own 80 is mapped to 2).
func Parse(name, description string, grammar any, args []string, stderr io.Writer, opts ...kong.Option) (ctx *kong.Context, code int, done bool) {
	return ParseVersion(name, description, "", grammar, args, stderr, opts...)
}

// Describe is a tool's --help description: the one-line summary, then the
// examples under "Examples:", one command line each, printed as written
// (never re-wrapped). Every tool's --help has at least one; the commands are
// complete (paths as the README and make demo use them) and their flags real
// (tools/help_test.go parses each one).
func Describe(summary string, examples ...string) string {
	if len(examples) == 0 {
		return summary
	}
	var b strings.Builder
	b.WriteString(summary)
	b.WriteString("\n\nExamples:\n\n")
	for _, e := range examples {
		b.WriteString("\t")
		b.WriteString(e)
		b.WriteString("\n")
	}
	return b.String()
}

// versionFlag is the --version flag every tool gets through ParseVersion.
type versionFlag struct {
	Version kong.VersionFlag `help:"print the tool's version and the kernels it runs, then exit."`
}

// ParseVersion is Parse for a tool that runs kernels: its --version line
// ends with build (nn.BuildInfo: the sgemm and its kernel set, which decide
// the rounding of every result). Every tool has --version, which prints
// "yolodistill NAME (GO VERSION[, BUILD])" on stderr and exits 0.
func ParseVersion(name, description, build string, grammar any, args []string, stderr io.Writer, opts ...kong.Option) (ctx *kong.Context, code int, done bool) {
	v := fmt.Sprintf("yolodistill %s (%s", name, runtime.Version())
	if build != "" {
		v += ", " + build
	}
	opts = append(opts, kong.Embed(&versionFlag{}), kong.Vars{"version": v + ")"})
	defer func() {
		if r := recover(); r != nil {
			req, ok := r.(exitRequest)
			if !ok {
				panic(r)
			}
			ctx, code, done = nil, req.code, true
			if code != 0 {
				code = ExitUsage
			}
		}
	}()
	base := []kong.Option{
		kong.Name(name),
		kong.Description(description),
		kong.Writers(stderr, stderr),
		kong.Exit(func(c int) { panic(exitRequest{c}) }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	}
	parser, err := kong.New(grammar, append(base, opts...)...)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return nil, ExitFailure, true
	}
	ctx, err = parser.Parse(args)
	if err != nil {
		var pe *kong.ParseError
		if errors.As(err, &pe) && pe.Context != nil {
			pe.Context.PrintUsage(true)
		}
		fmt.Fprintf(stderr, "%s: error: %v\n", name, err)
		return nil, ExitUsage, true
	}
	return ctx, ExitOK, false
}

// Logger writes messages to stderr, each prefixed with the tool's name.
type Logger struct {
	Name string
	W    io.Writer
}

// Printf writes one message line.
func (l Logger) Printf(format string, args ...any) {
	fmt.Fprintf(l.W, "%s: %s\n", l.Name, fmt.Sprintf(format, args...))
}

// Fail reports err and returns the exit code for it (Code).
func (l Logger) Fail(err error) int {
	if errors.Is(err, context.Canceled) {
		l.Printf("interrupted")
		return ExitInterrupted
	}
	l.Printf("error: %v", err)
	return Code(err)
}

// Code is the exit code for err: ExitOK for nil, ExitInterrupted when the
// error comes from a cancelled context, ExitUsage when IsUsage(err),
// ExitFailure otherwise.
func Code(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case IsUsage(err):
		return ExitUsage
	}
	return ExitFailure
}

// UsageError marks a misuse of the command line that kong cannot see (a bad
// combination of flags, a flag value out of range): the tool exits with
// ExitUsage.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e UsageError) Unwrap() error { return e.Err }

// IsUsage marks UsageError as a usage error (see IsUsage).
func (e UsageError) IsUsage() bool { return true }

// Usagef returns a UsageError with a formatted message (%w wraps).
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// IsUsage reports whether err, or any error it wraps (errors.Join lists
// included), says it is a usage error through a method IsUsage() bool
// returning true: a UsageError, or a configuration error blamed on a -o
// override (config.Error).
func IsUsage(err error) bool {
	if err == nil {
		return false
	}
	if u, ok := err.(interface{ IsUsage() bool }); ok && u.IsUsage() {
		return true
	}
	switch w := err.(type) {
	case interface{ Unwrap() error }:
		return IsUsage(w.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range w.Unwrap() {
			if IsUsage(e) {
				return true
			}
		}
	}
	return false
}

// NetFlags are the download flags of every tool that takes http(s) URLs
// (embed it in the kong grammar; pkg/checkpoint's FetchOptions gets them).
type NetFlags struct {
	ConnectTimeout time.Duration `name:"connect-timeout" default:"30s" placeholder:"DURATION" help:"give up on a download whose server does not connect within this time (default 30s; e.g. 10s, 2m)."`
	IdleTimeout    time.Duration `name:"idle-timeout" default:"60s" placeholder:"DURATION" help:"give up on a download whose server sends nothing for this long: no answer, or a stalled transfer (default 60s). Long downloads print progress on stderr."`
}

// Check refuses negative durations (a usage error); 0 means the default.
func (f NetFlags) Check() error {
	if f.ConnectTimeout < 0 || f.IdleTimeout < 0 {
		return Usagef("--connect-timeout %v, --idle-timeout %v: want positive durations (e.g. 30s)", f.ConnectTimeout, f.IdleTimeout)
	}
	return nil
}

// RunFunc is a tool's run function: it parses args, does the work with the
// given streams and returns the exit code. Tests call it in process
// (pkg/cli/clitest).
type RunFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Main runs a tool's run function on the process's arguments and streams,
// with a context cancelled on SIGINT or SIGTERM, and returns its exit code:
// a tool's main is os.Exit(cli.Main(run)).
func Main(run RunFunc) int {
	ctx, stop := SignalContext()
	defer stop()
	return run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// SignalContext returns a context cancelled on SIGINT or SIGTERM, for main.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

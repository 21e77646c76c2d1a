// Package cli holds what every yolodistill binary shares at its edge: the exit
// codes, kong parsing that maps usage errors to exit 2 and keeps usage text off
// stdout, and messages on stderr prefixed with the tool's name.
//
// A tool's main is one line: os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout,
// os.Stderr)); nothing under pkg/ calls os.Exit.
//
// Imports (make vet checks it): nothing of this module; never gorgonia,
// directly or through another package.
package cli

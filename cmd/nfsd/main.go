// Command nfsd serves Kubernetes volumes over NFSv3: one directory per
// volume under --root, mounted as host:/volumes/<id>. `nfsd serve` runs
// the server, `nfsd admin …` is a client of its admin API, `nfsd version`
// names the build.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rwxnfs/rwxnfs/internal/version"
)

// Exit codes, the same for every command.
const (
	exitOK     = 0
	exitFailed = 1 // the command ran and failed
	exitUsage  = 2 // the command line is wrong; nothing was done
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs one command line and returns its exit code. Every error
// is printed as one line naming the command; usage errors add where to
// find the usage, never the whole usage text in front of the message.
func execute(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	path := "nfsd"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	var f *failure
	if errors.As(err, &f) {
		fmt.Fprintf(stderr, "%s: %v\n", path, f.err)
		return exitFailed
	}
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", path, err, path)
	return exitUsage
}

// failure marks an error of a command that ran (exit 1); every other
// error is a usage error (exit 2): cobra's own (unknown command or flag,
// bad flag value) and those usagef makes.
type failure struct{ err error }

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// usageError is a wrong command line found by a command itself.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// act makes a cobra RunE whose errors are failures unless they are
// usage errors.
func act(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var u *usageError
		if err == nil || errors.As(err, &u) {
			return err
		}
		return &failure{err}
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	o := defaultServeOptions()
	root := &cobra.Command{
		Use:   "nfsd",
		Short: "NFSv3 server for Kubernetes ReadWriteMany volumes, and its admin client",
		Long: `nfsd serves one directory per volume under --root over NFSv3 (with MOUNT,
NLM/NSM locking and its own portmapper), with per-volume quotas and an
admin gRPC API. "nfsd serve" runs the server; "nfsd admin" drives a
running server's admin API.

Bare "nfsd" (no command) still serves, for compatibility, and says so:
prefer "nfsd serve".`,
		Example: `  nfsd serve --init --root ./nfsd-data --listen 127.0.0.1:2049 --portmap-listen 127.0.0.1:111
  nfsd admin list
  nfsd version`,
		Version:       version.String(),
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: act(func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(stderr, `nfsd: no command given: serving as "nfsd serve" would (see "nfsd --help")`)
			return serve(cmd, o, stderr)
		}),
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("nfsd {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	// The serve flags are accepted bare for compatibility but documented
	// under "nfsd serve" only.
	addServeFlags(root.Flags(), o)
	root.Flags().VisitAll(func(f *pflag.Flag) { f.Hidden = true })
	root.AddCommand(newServeCmd(stderr), newAdminCmd(stdout, stderr), newVersionCmd(stdout))
	return root
}

// noArgs rejects any argument, naming the first.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// groupCmd is a command that only holds subcommands: a missing or
// unknown subcommand is a usage error naming the word.
func groupCmd(use, short, long, example string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use: use + " <command>", Short: short, Long: long, Example: example,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("missing command: one of %s", subNames(cmd))
		},
	}
	c.AddCommand(subs...)
	return c
}

func subNames(cmd *cobra.Command) string {
	s := ""
	for _, c := range cmd.Commands() {
		if !c.IsAvailableCommand() {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += c.Name()
	}
	return s
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the build: version, commit and Go version",
		Long:    "Print the build of this binary as the Go toolchain stamped it: module version, VCS commit (+dirty for a modified tree) and Go version. The same values are the labels of the rwxnfs_build_info metric.",
		Example: "  nfsd version\n  nfsd --version",
		Args:    noArgs,
		RunE: act(func(cmd *cobra.Command, args []string) error {
			b := version.Get()
			fmt.Fprintf(stdout, "nfsd %s\ncommit: %s\ngo: %s\n", version.String(), b.Revision, b.GoVersion)
			return nil
		}),
	}
}

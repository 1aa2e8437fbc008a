package rpc

import (
	"context"
	"fmt"
	"slices"

	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

// Program is one RPC program: its number, the versions it serves, a name
// for logs, and the handler of its calls.
type Program struct {
	Prog, Low, High uint32
	Name            string
	Handler         Handler
}

// Mux routes calls to programs by program number and checks the version
// against the program's range, answering PROG_UNAVAIL and PROG_MISMATCH
// itself. It is a Handler, so a transport serves one Mux, and Only gives
// a transport (a UDP socket, the portmapper's port) a view of some of
// its programs: each program is registered once, wherever it is served.
//
// Register every program before serving; a Mux is not changed after.
type Mux struct {
	progs map[uint32]*Program
}

// Handle registers a program. Registering a program number twice is a
// wiring mistake and panics.
func (m *Mux) Handle(p Program) {
	if m.progs == nil {
		m.progs = make(map[uint32]*Program)
	}
	if _, dup := m.progs[p.Prog]; dup {
		panic(fmt.Sprintf("rpc: program %d registered twice", p.Prog))
	}
	if p.Handler == nil || p.Low > p.High {
		panic(fmt.Sprintf("rpc: program %d: no handler or empty version range", p.Prog))
	}
	m.progs[p.Prog] = &p
}

// Program returns a registered program.
func (m *Mux) Program(prog uint32) (Program, bool) {
	p, ok := m.progs[prog]
	if !ok {
		return Program{}, false
	}
	return *p, true
}

// ServeRPC implements Handler.
func (m *Mux) ServeRPC(ctx context.Context, req *Request, w *xdr.Writer) error {
	p := m.progs[req.Prog]
	switch {
	case p == nil:
		return ErrProgUnavail
	case req.Vers < p.Low || req.Vers > p.High:
		return &CallError{Accept: ProgMismatch, Low: p.Low, High: p.High}
	}
	return p.Handler.ServeRPC(ctx, req, w)
}

// Brief implements Brief: a call the Mux answers itself (a program it
// does not serve, a version out of range) is brief; any other is brief
// if its program's handler says so.
func (m *Mux) Brief(prog, vers, proc uint32) bool {
	p := m.progs[prog]
	if p == nil || vers < p.Low || vers > p.High {
		return true
	}
	b, ok := p.Handler.(Brief)
	return ok && b.Brief(prog, vers, proc)
}

// Only returns a Handler serving just the given programs of m; calls of
// any other program are PROG_UNAVAIL. The programs must be registered
// (before or after Only is called, but before serving).
func (m *Mux) Only(progs ...uint32) Handler {
	return &view{m: m, progs: slices.Clone(progs)}
}

type view struct {
	m     *Mux
	progs []uint32
}

func (v *view) ServeRPC(ctx context.Context, req *Request, w *xdr.Writer) error {
	if !slices.Contains(v.progs, req.Prog) {
		return ErrProgUnavail
	}
	return v.m.ServeRPC(ctx, req, w)
}

func (v *view) Brief(prog, vers, proc uint32) bool {
	return !slices.Contains(v.progs, prog) || v.m.Brief(prog, vers, proc)
}

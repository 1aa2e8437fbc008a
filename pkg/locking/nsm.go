package locking

import (
	"context"

	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/xdr"
)

type nsmHandler struct{ s *Service }

// ServeRPC implements rpc.Handler for NSM v1. The server is its own
// status monitor: SM_NOTIFY from a restarted client releases that
// client's locks; SM_STAT reports our state. SM_MON, SM_UNMON,
// SM_UNMON_ALL and SM_SIMU_CRASH are for a lock manager on the same host,
// so they are honoured only from loopback addresses; registrations are
// called back (status) when the monitored host sends SM_NOTIFY.
func (h nsmHandler) ServeRPC(_ context.Context, req *rpc.Request, w *xdr.Writer) error {
	s := h.s
	m := s.mon
	r := req.Args
	local := req.RemoteIP.IsLoopback()
	switch req.Proc {
	case SMProcNull:
	case SMProcStat:
		var a SMName
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := SMStatRes{Res: SMStatSucc, State: m.currentState()}
		res.Encode(w)
	case SMProcMon:
		var a Mon
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		res := SMStatRes{Res: SMStatFail, State: m.currentState()}
		if local && m.addReg(smReg{id: a.MonID, priv: a.Priv}) {
			res.Res = SMStatSucc
		}
		res.Encode(w)
	case SMProcUnmon:
		var a MonID
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		if local {
			m.removeRegs(func(g smReg) bool { return g.id == a })
		}
		w.Int32(m.currentState())
	case SMProcUnmonAll:
		var a MyID
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		if local {
			m.removeRegs(func(g smReg) bool { return g.id.MyID == a })
		}
		w.Int32(m.currentState())
	case SMProcSimuCrash:
		// A simulated crash of this host: drop the registrations and
		// move to a new state. Lock clients are not told: their locks
		// were not lost, and a reclaim outside a grace period would be
		// refused.
		if local {
			if err := m.simulateCrash(); err != nil {
				return err
			}
		}
	case SMProcNotify:
		var a StatChge
		if a.Decode(r) != nil {
			return rpc.ErrGarbageArgs
		}
		s.clientRebooted(a.MonName, req.RemoteIP, a.State, true)
		s.callRegistrations(a)
	default:
		return rpc.ErrProcUnavail
	}
	return nil
}

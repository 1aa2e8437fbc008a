package rpcserver

// Calls run on worker goroutines that are kept between calls. A new
// goroutine starts with a 2 KiB stack, and the path of an NFS call
// through the protocol and file-operation layers needs more: a goroutine
// per call paid for growing its stack (copying and adjusting every frame)
// on every call, which measured as much as half the server's instructions
// for a GETATTR. A worker's stack is grown once.
//
// There is no pool to size: a call is handed to an idle worker if one is
// waiting, or a new worker is started. Calls start only once they hold a
// server-wide call slot, and a worker also writes its call's reply, so
// there are never more workers than Limits.Inflight calls served at once
// plus the replies being written (at most PerClientInflight per client);
// idle ones wait for the next call until Shutdown.

// spawn runs f on an idle worker, or on a new one if none is idle; it
// never waits.
func (s *Server) spawn(f func()) {
	select {
	case s.work <- f:
	default:
		go s.worker(f)
	}
}

func (s *Server) worker(f func()) {
	for ok := true; ok; f, ok = <-s.work {
		f()
	}
}

// stopWorkers lets idle workers end, once no call can be started.
func (s *Server) stopWorkers() { s.stopWork.Do(func() { close(s.work) }) }

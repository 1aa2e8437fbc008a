package locking

import (
	"context"
	"net/netip"
	"time"
)

// Telling others of restarts: SM_NOTIFY to every client recorded before
// ours, so that it reclaims its locks, and the SM_MON callbacks of local
// lock managers when a host they monitor restarts.

// notifyClient tells a client recorded before the restart that we
// restarted, so that it reclaims its locks.
func (s *Service) notifyClient(rec monRecord) {
	host, err := hostAddr(rec.Addr)
	if err != nil {
		s.grace.done(rec.Name, "unusable address")
		return
	}
	var local netip.Addr
	if a, err := netip.ParseAddr(rec.ServerAddr); err == nil {
		local = a
	}
	monName := s.cfg.ServerName
	if monName == "" {
		monName = rec.ServerAddr
	}
	if monName == "" {
		monName = hostname()
	}
	args := StatChge{MonName: monName, State: s.mon.currentState()}
	delay := s.cfg.NotifyBackoff
	for attempt := 0; ; attempt++ {
		err = s.callNotify(local, host, &args)
		if err == nil {
			s.log.Info("told client of our restart", "client", rec.Name, "host", host)
			s.grace.notified(rec.Name)
			return
		}
		if attempt >= s.cfg.NotifyRetries {
			break
		}
		select {
		case <-time.After(delay):
		case <-s.ctx.Done():
			return
		}
		delay *= 2
	}
	s.log.Warn("cannot tell client of our restart; its locks are lost", "client", rec.Name, "host", host, "err", err)
	s.grace.done(rec.Name, "SM_NOTIFY undeliverable")
}

func (s *Service) callNotify(local, host netip.Addr, args *StatChge) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallbackTimeout)
	defer cancel()
	c, err := s.cfg.Dialer.Dial(ctx, local, host, NSMProg, NSMVers)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Call(ctx, NSMProg, NSMVers, SMProcNotify, args.Encode)
	return err
}

func (s *Service) callRegistrations(a StatChge) {
	s.mon.mu.Lock()
	var regs []smReg
	for _, g := range s.mon.regs {
		if g.id.MonName == a.MonName {
			regs = append(regs, g)
		}
	}
	s.mon.mu.Unlock()
	for _, g := range regs {
		host := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if ip, err := netip.ParseAddr(g.id.MyID.MyName); err == nil && ip.IsLoopback() {
			host = ip
		}
		st := SMStatus{MonName: a.MonName, State: a.State, Priv: g.priv}
		id := g.id.MyID
		select {
		case s.async <- struct{}{}:
		default:
			continue
		}
		if !s.background(func() {
			defer func() { <-s.async }()
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CallbackTimeout)
			defer cancel()
			c, err := s.cfg.Dialer.Dial(ctx, netip.Addr{}, host, uint32(id.Prog), uint32(id.Vers))
			if err != nil {
				s.log.Debug("SM_MON callback: cannot connect", "err", err)
				return
			}
			defer c.Close()
			c.Call(ctx, uint32(id.Prog), uint32(id.Vers), uint32(id.Proc), st.Encode)
		}) {
			<-s.async
		}
	}
}

package csi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	mount "k8s.io/mount-utils"
)

type nodeServer struct {
	csi.UnimplementedNodeServer
	nodeID       string
	mounter      mount.Interface
	check        *checker
	mountTimeout time.Duration
	// unmountWait bounds each step of an unmount before a harder one.
	unmountWait time.Duration

	mu sync.Mutex
	// busy holds targets whose mount or unmount is still running,
	// possibly abandoned by a call that timed out. Only calls for the
	// same target wait on it: other volumes never do.
	busy map[string]string
	// statting holds volume paths whose statfs has not returned (a hung
	// server): the next stats call reports them without another statfs.
	statting map[string]bool
}

func newNodeServer(cfg Config) (*nodeServer, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("node mode needs a node ID (--node-id; default: the host name)")
	}
	if cfg.MountTimeout <= 0 {
		cfg.MountTimeout = 2 * time.Minute
	}
	return &nodeServer{
		nodeID:       cfg.NodeID,
		mounter:      mount.NewWithoutSystemd(""),
		check:        newChecker(cfg.NodeID),
		mountTimeout: cfg.MountTimeout,
		unmountWait:  10 * time.Second,
		busy:         make(map[string]string),
		statting:     make(map[string]bool),
	}, nil
}

// probe: the node plugin is ready if it can mount at all.
func (s *nodeServer) probe() error {
	if err := s.check.helper(); err != nil {
		return errors.New(status.Convert(err).Message())
	}
	return nil
}

func (s *nodeServer) NodeGetInfo(ctx context.Context, req *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: s.nodeID}, nil
}

func (s *nodeServer) NodeGetCapabilities(ctx context.Context, req *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, c := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_VOLUME_CONDITION,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: c}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// claim marks target busy with what; false if it already is.
func (s *nodeServer) claim(target, what string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.busy[target]; ok {
		return cur, false
	}
	s.busy[target] = what
	return "", true
}

func (s *nodeServer) release(target string) {
	s.mu.Lock()
	delete(s.busy, target)
	s.mu.Unlock()
}

// mountAt returns how target is mounted now, from /proc/mounts (never a
// stat of target, which hangs on a dead server), or nil.
func (s *nodeServer) mountAt(target string) (*mount.MountPoint, error) {
	mps, err := s.mounter.List()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "reading the mount table: %v", err)
	}
	clean := filepath.Clean(target)
	var found *mount.MountPoint
	for i := range mps {
		if filepath.Clean(mps[i].Path) == clean {
			found = &mps[i] // the last one is on top
		}
	}
	return found, nil
}

// NodePublishVolume mounts server:share at the target with vers=3 and the
// capability's mount flags; read-only if asked. There is no stage step:
// nothing is attached to a node.
func (s *nodeServer) NodePublishVolume(ctx context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	target := req.GetTargetPath()
	if target == "" {
		return nil, status.Error(codes.InvalidArgument, "target_path is required")
	}
	c := req.GetVolumeCapability()
	if c == nil {
		return nil, status.Error(codes.InvalidArgument, "volume_capability is required")
	}
	if err := checkCapabilities([]*csi.VolumeCapability{c}); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	server, share := req.GetVolumeContext()[ctxServer], req.GetVolumeContext()[ctxShare]
	if server == "" || share == "" {
		return nil, status.Errorf(codes.InvalidArgument, "volume context lacks %s or %s: was this volume provisioned by %s?", ctxServer, ctxShare, DriverName)
	}
	source := server + ":" + share
	readOnly := req.GetReadonly()
	switch c.GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		readOnly = true
	}
	flags := c.GetMount().GetMountFlags()
	opts := []string{"vers=3"}
	for _, f := range flags {
		for _, o := range strings.Split(f, ",") {
			if o = strings.TrimSpace(o); o != "" && o != "vers=3" && o != "nfsvers=3" && o != "ro" && o != "rw" {
				opts = append(opts, o)
			}
		}
	}
	if readOnly {
		opts = append(opts, "ro")
	}
	log := logFrom(ctx).With("target", target, "source", source)

	if busy, ok := s.claim(target, "mount of "+source); !ok {
		return nil, status.Errorf(codes.Aborted, "an earlier %s at %s has not finished (the server may be unresponsive); retry later", busy, target)
	}
	released := false
	defer func() {
		if !released {
			s.release(target)
		}
	}()

	mps, err := s.mounter.List()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "reading the mount table: %v", err)
	}
	var here *mount.MountPoint
	for i := range mps {
		mp := &mps[i]
		if filepath.Clean(mp.Path) == filepath.Clean(target) {
			here = mp
			continue
		}
		if mp.Device == source && c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER {
			return nil, status.Errorf(codes.FailedPrecondition, "volume %s is single-node-single-writer and is already mounted at %s", req.GetVolumeId(), mp.Path)
		}
	}
	if here != nil {
		mountedRO := slices.Contains(here.Opts, "ro")
		if here.Device == source && mountedRO == readOnly {
			log.Info("already mounted")
			return &csi.NodePublishVolumeResponse{}, nil
		}
		return nil, status.Errorf(codes.AlreadyExists, "%s is already mounted from %s (%s), not from %s (%s): unpublish it first",
			target, here.Device, rwWord(mountedRO), source, rwWord(readOnly))
	}
	if err := s.check.all(ctx, server, share, parseMountOpts(flags)); err != nil {
		log.Warn("not mounting: a pre-mount check failed", "err", status.Convert(err).Message())
		return nil, err
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, status.Errorf(codes.Internal, "creating %s: %v", target, err)
	}

	// Mount in the background and wait at most mountTimeout: a mount that
	// hangs (a server that stopped answering after the checks) is
	// abandoned, keeps only its own target busy, and releases it when it
	// finally returns.
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		err := s.mounter.Mount(source, target, "nfs", opts)
		if err != nil {
			log.Warn("mount failed", "err", err, "took", time.Since(start).Round(time.Millisecond))
		}
		s.release(target)
		done <- err
	}()
	released = true // the goroutine releases it
	timer := time.NewTimer(s.mountTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return nil, mountError(source, target, err)
		}
	case <-timer.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "mounting %s at %s did not finish in %v (the server stopped answering, or mount itself is stuck): the mount is abandoned, left to finish or fail on its own, and calls for this target wait for it; other volumes are not held up", source, target, s.mountTimeout)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	log.Info("mounted", "options", strings.Join(opts, ","), "took", time.Since(start).Round(time.Millisecond))
	return &csi.NodePublishVolumeResponse{}, nil
}

func rwWord(ro bool) string {
	if ro {
		return "read-only"
	}
	return "read-write"
}

// mountError turns mount(8)'s failure into an actionable status.
func mountError(source, target string, err error) error {
	msg := err.Error()
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "access denied"), strings.Contains(low, "permission denied"):
		return status.Errorf(codes.FailedPrecondition, "the server refused to mount %s at %s (the volume's allowedClients?): %s", source, target, msg)
	case strings.Contains(low, "timed out"), strings.Contains(low, "no route to host"), strings.Contains(low, "connection refused"):
		return status.Errorf(codes.Unavailable, "mounting %s at %s: the server does not answer: %s", source, target, msg)
	case strings.Contains(low, "rpc.statd"):
		return status.Errorf(codes.FailedPrecondition, "mounting %s at %s needs rpc.statd for locking: start it, or mount with nolock knowingly: %s", source, target, msg)
	case strings.Contains(low, "bad option"), strings.Contains(low, "helper program"):
		return status.Errorf(codes.FailedPrecondition, "mounting %s at %s: mount cannot mount NFS here (mount.nfs missing, or a mount option it does not know): %s", source, target, msg)
	}
	return status.Errorf(codes.Internal, "mounting %s at %s: %s", source, target, msg)
}

// NodeUnpublishVolume unmounts the target and removes it. It returns
// when the server is dead too: a plain unmount that does not finish in
// time is followed by a forced one (outstanding calls fail) and then a
// lazy one (detached now, cleaned up by the kernel later).
func (s *nodeServer) NodeUnpublishVolume(ctx context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	target := req.GetTargetPath()
	if target == "" {
		return nil, status.Error(codes.InvalidArgument, "target_path is required")
	}
	log := logFrom(ctx).With("target", target)
	if busy, ok := s.claim(target, "unmount"); !ok {
		return nil, status.Errorf(codes.Aborted, "an earlier %s at %s has not finished; retry later", busy, target)
	}
	defer s.release(target)
	for i := 0; ; i++ {
		mp, err := s.mountAt(target)
		if err != nil {
			return nil, err
		}
		if mp == nil {
			break
		}
		if i == 8 {
			return nil, status.Errorf(codes.Internal, "%s is still mounted from %s after %d unmounts", target, mp.Device, i)
		}
		if err := s.unmount(ctx, target, log); err != nil {
			return nil, err
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "removing %s: %v", target, err)
	}
	log.Info("unpublished")
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// unmount takes one mount off target, harder at each step that does not
// finish in time.
func (s *nodeServer) unmount(ctx context.Context, target string, log *slog.Logger) error {
	steps := []struct {
		name string
		do   func() error
	}{
		{"umount", func() error { return s.mounter.Unmount(target) }},
		{"forced umount", func() error { return unix.Unmount(target, unix.MNT_FORCE) }},
		{"lazy umount", func() error { return unix.Unmount(target, unix.MNT_DETACH) }},
	}
	var last error
	for _, st := range steps {
		done := make(chan error, 1)
		go func() { done <- st.do() }()
		select {
		case err := <-done:
			if err == nil {
				if st.name != "umount" {
					log.Warn("unmounted the hard way: the server did not let a plain unmount finish", "how", st.name)
				}
				return nil
			}
			if errors.Is(err, unix.EINVAL) {
				return nil // not mounted (any more)
			}
			last = fmt.Errorf("%s: %w", st.name, err)
			log.Warn("unmount step failed", "how", st.name, "err", err)
		case <-time.After(s.unmountWait):
			last = fmt.Errorf("%s did not finish in %v", st.name, s.unmountWait)
			log.Warn("unmount step hangs; trying harder", "how", st.name, "after", s.unmountWait)
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return status.Errorf(codes.Internal, "unmounting %s: %v", target, last)
}

// NodeGetVolumeStats reports the volume's size and use as the NFS mount
// shows them (nfsd reports the quota), and an abnormal condition when the
// mount does not answer.
func (s *nodeServer) NodeGetVolumeStats(ctx context.Context, req *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	p := req.GetVolumePath()
	if p == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_path is required")
	}
	mp, err := s.mountAt(p)
	if err != nil {
		return nil, err
	}
	if mp == nil {
		if _, err := os.Lstat(p); err != nil {
			return nil, status.Errorf(codes.NotFound, "volume %s is not at %s: %v", req.GetVolumeId(), p, err)
		}
		return nil, status.Errorf(codes.NotFound, "volume %s is not mounted at %s", req.GetVolumeId(), p)
	}
	abnormal := func(why string) (*csi.NodeGetVolumeStatsResponse, error) {
		logFrom(ctx).Warn("volume abnormal", "path", p, "why", why)
		return &csi.NodeGetVolumeStatsResponse{VolumeCondition: &csi.VolumeCondition{Abnormal: true, Message: why}}, nil
	}
	s.mu.Lock()
	hung := s.statting[p]
	if !hung {
		s.statting[p] = true
	}
	s.mu.Unlock()
	if hung {
		return abnormal(fmt.Sprintf("the NFS mount of %s at %s does not answer (an earlier statfs is still waiting): the server is down or unreachable", mp.Device, p))
	}
	type result struct {
		st  unix.Statfs_t
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = unix.Statfs(p, &r.st)
		s.mu.Lock()
		delete(s.statting, p)
		s.mu.Unlock()
		done <- r
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		return abnormal(fmt.Sprintf("the NFS mount of %s at %s does not answer within 5s: the server is down or unreachable", mp.Device, p))
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if r.err != nil {
		if mount.IsCorruptedMnt(r.err) {
			return abnormal(fmt.Sprintf("the NFS mount of %s at %s is stale (%v): the volume was deleted or the server lost it; unpublish and publish again", mp.Device, p, r.err))
		}
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", p, r.err)
	}
	bs := r.st.Frsize
	if bs == 0 {
		bs = r.st.Bsize
	}
	total, free, avail := int64(r.st.Blocks)*bs, int64(r.st.Bfree)*bs, int64(r.st.Bavail)*bs
	return &csi.NodeGetVolumeStatsResponse{
		Usage: []*csi.VolumeUsage{
			{Unit: csi.VolumeUsage_BYTES, Total: total, Used: total - free, Available: avail},
			{Unit: csi.VolumeUsage_INODES, Total: int64(r.st.Files), Used: int64(r.st.Files) - int64(r.st.Ffree), Available: int64(r.st.Ffree)},
		},
		VolumeCondition: &csi.VolumeCondition{Message: "ok"},
	}, nil
}

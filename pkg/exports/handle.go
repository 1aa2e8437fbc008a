package exports

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
)

// An NFS file handle names a file for as long as the file exists, across
// server restarts and renames, so it must be derived from the file itself,
// not from a path or an in-memory table. It is built from the kernel's own
// handle (name_to_handle_at), which the kernel can turn back into the file
// (open_by_handle_at) in O(1), prefixed with the volume's id and sealed
// with a MAC keyed by a server secret:
//
//	byte 0      format version (1)
//	byte 1      n, length of the kernel handle
//	bytes 2-9   volume fsid
//	bytes 10-13 kernel handle type
//	n bytes     kernel handle
//	8 bytes     HMAC-SHA256(secret, all of the above), truncated
//
// The MAC means a client can neither forge a handle nor splice the kernel
// handle of one volume's file into another volume's handle: every handle
// the server accepts is one it minted for a file it found inside that
// volume.

const (
	handleVersion = 1
	handleHeader  = 14
	macLen        = 8
	// MaxHandle is NFSv3's limit on file handle size.
	MaxHandle = 64
	// maxKernelHandle is what fits in an NFSv3 handle beside our header.
	maxKernelHandle = MaxHandle - handleHeader - macLen
)

// Handle errors.
var (
	ErrBadHandle = errors.New("exports: malformed or forged file handle")
	ErrStale     = errors.New("exports: stale file handle")
)

type handleSealer struct {
	macs *sync.Pool // of *macState keyed with the server key
}

// macState is a keyed hash with room for its sum, pooled together so
// that sealing allocates nothing but the handle.
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newSealer(key []byte) handleSealer {
	return handleSealer{macs: &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, key)} }}}
}

// mac appends b's MAC to dst. READDIRPLUS mints a handle per entry, so the
// keyed hash is reused rather than rebuilt each time.
func (s handleSealer) mac(dst, b []byte) []byte {
	m := s.macs.Get().(*macState)
	m.h.Reset()
	m.h.Write(b)
	out := append(dst, m.h.Sum(m.sum[:0])[:macLen]...)
	s.macs.Put(m)
	return out
}

// seal builds the wire handle for a kernel handle in a volume.
func (s handleSealer) seal(fsid uint64, ktype int32, kh []byte) ([]byte, error) {
	if len(kh) > maxKernelHandle {
		return nil, errors.New("exports: kernel file handle too long for NFSv3")
	}
	h := make([]byte, handleHeader, handleHeader+len(kh)+macLen)
	h[0] = handleVersion
	h[1] = byte(len(kh))
	binary.BigEndian.PutUint64(h[2:], fsid)
	binary.BigEndian.PutUint32(h[10:], uint32(ktype))
	h = append(h, kh...)
	return s.mac(h, h), nil
}

// parsedHandle is a handle's fields, not yet authenticated.
type parsedHandle struct {
	fsid  uint64
	ktype int32
	kh    []byte
	body  []byte // everything the MAC covers
	mac   []byte
}

func parseHandle(h []byte) (parsedHandle, error) {
	var p parsedHandle
	if len(h) < handleHeader+macLen || len(h) > MaxHandle || h[0] != handleVersion {
		return p, ErrBadHandle
	}
	n := int(h[1])
	if len(h) != handleHeader+n+macLen {
		return p, ErrBadHandle
	}
	p.fsid = binary.BigEndian.Uint64(h[2:])
	p.ktype = int32(binary.BigEndian.Uint32(h[10:]))
	p.kh = h[handleHeader : handleHeader+n]
	p.body = h[:handleHeader+n]
	p.mac = h[handleHeader+n:]
	return p, nil
}

func (s handleSealer) verify(p parsedHandle) bool {
	var buf [macLen]byte
	return hmac.Equal(s.mac(buf[:0], p.body), p.mac)
}

// HandleFSID returns the volume fsid a handle claims, without checking it.
func HandleFSID(h []byte) (uint64, bool) {
	p, err := parseHandle(h)
	return p.fsid, err == nil
}

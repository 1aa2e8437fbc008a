package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Record marking (RFC 5531 section 11): over a stream, each message is sent
// as one or more fragments, each preceded by a 4-byte header whose top bit
// marks the last fragment and whose low 31 bits give the fragment's length.

const lastFragment = 1 << 31

// ErrRecordTooLarge means a record's fragments add up to more than allowed.
type ErrRecordTooLarge struct{ Size, Max uint64 }

func (e ErrRecordTooLarge) Error() string {
	return fmt.Sprintf("rpc: record of %d bytes exceeds limit %d", e.Size, e.Max)
}

// ErrEmptyRecord means a record had no bytes at all.
var ErrEmptyRecord = errors.New("rpc: empty record")

// RecordReader reads records from a stream. Before each fragment's body is
// read it calls reserve with the fragment's size, so a server can bound the
// memory that pipelined requests take before it allocates any of it.
type RecordReader struct {
	R   io.Reader
	Max int // largest record accepted
	hdr [4]byte
}

// Read reads one whole record and returns it, appended to buf[:0].
// reserve, if non-nil, is called with each fragment's length, and whether
// it is the last, before the fragment is read; an error from it aborts the
// read. The buffer never grows past Max.
func (rr *RecordReader) Read(buf []byte, reserve func(n int, last bool) error) ([]byte, error) {
	buf = buf[:0]
	for frags := 0; ; frags++ {
		if _, err := io.ReadFull(rr.R, rr.hdr[:]); err != nil {
			if err == io.EOF && frags > 0 {
				err = io.ErrUnexpectedEOF // EOF between fragments
			}
			return nil, err
		}
		h := binary.BigEndian.Uint32(rr.hdr[:])
		n := int(h &^ lastFragment)
		if uint64(len(buf))+uint64(n) > uint64(rr.Max) {
			return nil, ErrRecordTooLarge{Size: uint64(len(buf)) + uint64(n), Max: uint64(rr.Max)}
		}
		if reserve != nil {
			if err := reserve(n, h&lastFragment != 0); err != nil {
				return nil, err
			}
		}
		end := len(buf) + n
		for len(buf) < end {
			start := len(buf)
			if cap(buf) == start {
				// Room for the whole fragment, or double (never past
				// Max), whichever is more: a record sent as many small
				// fragments is not copied once per fragment.
				nb := make([]byte, start, max(end, min(2*cap(buf), rr.Max)))
				copy(nb, buf)
				buf = nb
			}
			k, err := rr.R.Read(buf[start:min(cap(buf), end)])
			buf = buf[:start+k]
			if err != nil && len(buf) < end {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
		}
		if h&lastFragment != 0 {
			if len(buf) == 0 {
				return nil, ErrEmptyRecord
			}
			return buf, nil
		}
	}
}

// MarkRecord fills the 4-byte fragment header at the start of rec, which
// must have been reserved by the encoder, making rec one last fragment.
func MarkRecord(rec []byte) {
	binary.BigEndian.PutUint32(rec, uint32(len(rec)-4)|lastFragment)
}

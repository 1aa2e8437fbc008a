package wire

import "github.com/rwxnfs/rwxnfs/pkg/xdr"

// MOUNT v3 (RFC 1813 appendix I).

// DirPath is dirpath: the argument of MNT and UMNT. Decoding accepts one
// byte more than MNTPATHLEN, so that a server can tell a path that is too
// long (MNT3ERR_NAMETOOLONG) from a malformed call.
type DirPath struct{ Path string }

func (a *DirPath) Encode(w *xdr.Writer) { w.String(a.Path) }

func (a *DirPath) Decode(r *xdr.Reader) error {
	a.Path = r.String(MaxMountPath + 1)
	return r.Err()
}

// MntRes is mountres3.
type MntRes struct {
	Status  MountStatus
	FH      []byte   // OK
	Flavors []uint32 // OK
}

// maxFlavors bounds the auth flavors a client decodes.
const maxFlavors = 16

func (res *MntRes) Encode(w *xdr.Writer) {
	w.Uint32(uint32(res.Status))
	if res.Status == MountOK {
		w.Opaque(res.FH)
		w.Uint32(uint32(len(res.Flavors)))
		for _, f := range res.Flavors {
			w.Uint32(f)
		}
	}
}

func (res *MntRes) Decode(r *xdr.Reader) error {
	if res.Status = MountStatus(r.Uint32()); res.Status == MountOK {
		res.FH = r.Opaque(MaxHandle)
		n := r.Uint32()
		if n > maxFlavors {
			r.Fail(errBadValue)
			return r.Err()
		}
		res.Flavors = make([]uint32, 0, n)
		for range n {
			res.Flavors = append(res.Flavors, r.Uint32())
		}
	}
	return r.Err()
}

// MountEntry is one mountbody of DUMP's list: who mounted what.
type MountEntry struct{ Host, Dir string }

// MountList is mountlist, DUMP's result.
type MountList []MountEntry

func (l *MountList) Encode(w *xdr.Writer) {
	for _, e := range *l {
		w.Bool(true)
		w.String(e.Host)
		w.String(e.Dir)
	}
	w.Bool(false)
}

func (l *MountList) Decode(r *xdr.Reader) error {
	*l = (*l)[:0]
	for r.Bool() && r.Err() == nil {
		var e MountEntry
		e.Host = r.String(MaxMountName)
		e.Dir = r.String(MaxMountPath)
		*l = append(*l, e)
	}
	return r.Err()
}

// Export is one exportnode: a path and the client groups allowed to mount
// it (empty: anyone).
type Export struct {
	Dir    string
	Groups []string
}

// Exports is exports, EXPORT's result.
type Exports []Export

func (l *Exports) Encode(w *xdr.Writer) {
	for _, e := range *l {
		w.Bool(true)
		w.String(e.Dir)
		for _, g := range e.Groups {
			w.Bool(true)
			w.String(g)
		}
		w.Bool(false)
	}
	w.Bool(false)
}

func (l *Exports) Decode(r *xdr.Reader) error {
	*l = (*l)[:0]
	for r.Bool() && r.Err() == nil {
		e := Export{Dir: r.String(MaxMountPath), Groups: []string{}}
		for r.Bool() && r.Err() == nil {
			e.Groups = append(e.Groups, r.String(MaxMountName))
		}
		*l = append(*l, e)
	}
	return r.Err()
}

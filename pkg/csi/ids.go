package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// A CSI volume or snapshot ID names the nfsd that holds the object and
// the object's id there: "<nfsd>/<id>". Keeping the nfsd in the ID (and
// in the volume context) means volumes can later be spread over several
// nfsd instances by changing placement only: an existing ID keeps
// pointing where its data is.

// objectID is a parsed volume or snapshot ID.
type objectID struct {
	NFSD string // the --nfsd name
	ID   string // the volume or snapshot id on that nfsd
}

func (o objectID) String() string { return o.NFSD + "/" + o.ID }

// validID is what nfsd accepts as a volume or snapshot id.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// validName is what a --nfsd name may be: short, and without "/".
var validName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// parseObjectID splits a CSI ID. ok is false for anything this driver
// could not have made (CSI wants NotFound for those, not an error).
func parseObjectID(s string) (objectID, bool) {
	n, id, found := strings.Cut(s, "/")
	if !found || !validName.MatchString(n) || !validID.MatchString(id) {
		return objectID{}, false
	}
	return objectID{NFSD: n, ID: id}, true
}

// maxIDLen keeps "<nfsd>/<id>" within CSI's 128-byte ID limit.
const maxIDLen = 128 - 33

// idForName maps a CSI name (any string the CO chose) to an nfsd id,
// the same way every time so that a repeated request finds what the
// first one made: the name itself when it is a valid id, otherwise a
// readable part of it and a hash of all of it. nfsd records the full
// name with the volume and refuses a different name for the same id.
func idForName(name string) string {
	if validID.MatchString(name) && len(name) <= maxIDLen {
		return name
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	readable := strings.TrimLeft(b.String(), "._-")
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:8])
	if readable == "" {
		return "v-" + h
	}
	return readable + "-" + h
}

// checkNFSDName checks a --nfsd name.
func checkNFSDName(n string) error {
	if !validName.MatchString(n) {
		return fmt.Errorf("nfsd name %q: want 1-32 of a-z 0-9 -, starting and ending with a letter or digit", n)
	}
	return nil
}

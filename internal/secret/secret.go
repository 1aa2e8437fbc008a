// Package secret checks that a file holding a secret (the admin API's
// bearer token, the handle MAC key) is private to its owner, so nfsd
// refuses to start on one that other users could read or replace.
package secret

import (
	"fmt"
	"os"
)

// Private returns an error naming the file (what it is, its path and
// mode) and the chmod that fixes it if group or others may read, write or
// execute path (after symlinks, as Kubernetes mounts secrets). A secret
// others can read is no secret, and one they can write is theirs to
// choose. Errors stat-ing the file are returned as they are.
func Private(path, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return fmt.Errorf("%s %s is open to group or others (mode %04o): run chmod 600 %s (in Kubernetes, mount the secret with defaultMode: 0400)", what, path, m, path)
	}
	return nil
}

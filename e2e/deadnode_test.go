package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDeadNodeLockReleased (issue 5): node0 holds a lock and is
// powered off (qemu killed); node1 blocks on the lock. node0 then boots
// again under the same name with the NSM state its disk would have kept,
// and its sm-notify tells nfsd it restarted (RebootNotify), or node0
// stays dead and an operator runs "nfsd admin locks release node0"
// (AdminRelease): either way nfsd must drop node0's locks and grant node1's.
func TestDeadNodeLockReleased(t *testing.T) {
	t.Run("RebootNotify", func(t *testing.T) {
		b := newBed(t, 2)
		n0, n1 := b.nodes[0], b.nodes[1]
		n0.mount("default", "vers=3")
		n1.mount("default", "vers=3")
		n0.must(holdScript, time.Minute)
		// What rpc.statd recorded (the server it monitors): on a real node
		// this is on disk and survives the power cut.
		state := n0.must("ls /var/lib/nfs/sm && tar czf - -C /var/lib/nfs sm state | base64", 30*time.Second)
		lines := strings.Split(strings.TrimSpace(state), "\n")
		if len(lines) < 2 {
			t.Fatalf("node0's statd monitors nothing after taking an NLM lock:\n%s", state)
		}
		t.Logf("node0 statd monitors: %s", lines[0])
		b64 := strings.Join(lines[1:], "")

		wait := n1.start("e2enode lockwait -f /mnt/default/lockfile")
		select {
		case r := <-wait:
			t.Fatalf("node1 got the lock node0 holds: %q %v", r.out, r.err)
		case <-time.After(5 * time.Second):
		}
		n0.kill()
		t.Logf("node0 killed while holding the lock")
		select {
		case r := <-wait:
			t.Fatalf("node1 got the lock of a dead node before it was released: %q %v", r.out, r.err)
		case <-time.After(5 * time.Second):
		}
		t0 := time.Now()
		nn, err := b.bootRetry(0)
		if err != nil {
			t.Fatal(err)
		}
		b.nodes[0] = nn
		t.Logf("node0 rebooted in %v", time.Since(t0).Round(10*time.Millisecond))
		select {
		case r := <-wait:
			t.Fatalf("node1 got the lock before node0's sm-notify (reboot alone released it): %q %v", r.out, r.err)
		default:
		}
		nn.must(fmt.Sprintf("echo %s | base64 -d | tar xzf - -C /var/lib/nfs && sm-notify -f -d 2>&1 | tail -5; ls /var/lib/nfs/sm.bak", b64), time.Minute)
		expectGranted(t, wait, "node0's sm-notify")
	})
	t.Run("AdminRelease", func(t *testing.T) {
		b := newBed(t, 2)
		n0, n1 := b.nodes[0], b.nodes[1]
		n0.mount("default", "vers=3")
		n1.mount("default", "vers=3")
		n0.must(holdScript, time.Minute)
		wait := n1.start("e2enode lockwait -f /mnt/default/lockfile")
		select {
		case r := <-wait:
			t.Fatalf("node1 got the lock node0 holds: %q %v", r.out, r.err)
		case <-time.After(5 * time.Second):
		}
		n0.kill()
		t.Logf("node0 killed while holding the lock; it stays dead")
		out, err := b.admin("locks", "list")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("nfsd admin locks list:\n%s", out)
		if !strings.Contains(out, "node0") || !strings.Contains(out, "/lockfile") {
			t.Fatalf("locks list does not show node0's lock on /lockfile:\n%s", out)
		}
		select {
		case r := <-wait:
			t.Fatalf("node1 got a dead node's lock before the operator released it: %q %v", r.out, r.err)
		case <-time.After(3 * time.Second):
		}
		out, err = b.admin("locks", "release", "node0")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("nfsd admin locks release node0: %s", strings.TrimSpace(out))
		expectGranted(t, wait, "the operator released node0's locks")
		if out, err := b.admin("locks", "list", "client=node0"); err != nil || strings.Contains(out, "/lockfile") {
			t.Errorf("node0 still listed after release (%v):\n%s", err, out)
		}
	})
}

// holdScript takes an fcntl lock on /mnt/default/lockfile in the
// background and returns once it is held.
const holdScript = "e2enode hold -f /mnt/default/lockfile > /tmp/hold.log 2>&1 &\n" +
	"for i in $(seq 300); do grep -q HELD /tmp/hold.log && break; sleep 0.1; done; cat /tmp/hold.log; grep -q HELD /tmp/hold.log"

// expectGranted waits for node1's lockwait to get the lock, which must
// follow what released node0's.
func expectGranted(t *testing.T, wait <-chan result, after string) {
	t.Helper()
	t1 := time.Now()
	select {
	case r := <-wait:
		if r.err != nil || r.rc != 0 || !strings.Contains(r.out, "GOT") {
			t.Fatalf("node1 lockwait: rc=%d err=%v %q", r.rc, r.err, r.out)
		}
		t.Logf("node1 got the lock %v after %s: %s", time.Since(t1).Round(10*time.Millisecond), after, strings.TrimSpace(r.out))
	case <-time.After(3 * time.Minute):
		t.Fatalf("node1 still blocked 3 minutes after %s", after)
	}
}

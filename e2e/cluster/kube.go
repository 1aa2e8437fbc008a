package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Kubectl runs kubectl as the cluster's admin.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.KubectlAs(ctx, c.Kubeconfig, args...)
}

// KubectlAs runs kubectl with the given kubeconfig.
func (c *Cluster) KubectlAs(ctx context.Context, kubeconfig string, args ...string) (string, error) {
	return c.procs.run(ctx, nil, nil, c.bins["kubectl"], append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
}

// Apply applies a YAML or JSON manifest as the admin.
func (c *Cluster) Apply(ctx context.Context, manifest string) error {
	_, err := c.procs.run(ctx, nil, []byte(manifest), c.bins["kubectl"], "--kubeconfig="+c.Kubeconfig, "apply", "-f", "-")
	return err
}

// Get reads one object into v (kubectl get -o json).
func (c *Cluster) Get(ctx context.Context, v any, args ...string) error {
	out, err := c.Kubectl(ctx, append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}

// Helm runs helm against the cluster, its state in the cluster's
// directory (no repositories, nothing of the user's).
func (c *Cluster) Helm(ctx context.Context, args ...string) (string, error) {
	home := filepath.Join(c.cfg.Dir, "helm")
	env := []string{"KUBECONFIG=" + c.Kubeconfig, "HELM_CACHE_HOME=" + home + "/cache",
		"HELM_CONFIG_HOME=" + home + "/config", "HELM_DATA_HOME=" + home + "/data"}
	return c.procs.run(ctx, env, nil, c.bins["helm"], args...)
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount ns/name with a token from the TokenRequest API, as a pod
// running under that account would: whatever the account's RBAC denies,
// a program using it is denied.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, ns, name string) (string, error) {
	tok, err := c.Kubectl(ctx, "create", "token", name, "-n", ns, "--duration=24h")
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.cfg.Dir, "sa-"+ns+"-"+name+".kubeconfig")
	user := "system:serviceaccount:" + ns + ":" + name
	return path, writeKubeconfig(path, c.Server, c.pki.CAFile, user, "", "", strings.TrimSpace(tok))
}

// Eventually polls cond every interval until it reports done, returns an
// error, or timeout passes; the error names what was awaited and the last
// state cond reported.
func Eventually(ctx context.Context, what string, timeout time.Duration, cond func() (done bool, state string, err error)) error {
	deadline := time.Now().Add(timeout)
	state := ""
	for {
		done, st, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done {
			return nil
		}
		state = st
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %v (last: %s)", what, timeout, state)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %s)", what, ctx.Err(), state)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Dir is the cluster's work directory.
func (c *Cluster) Dir() string { return c.cfg.Dir }

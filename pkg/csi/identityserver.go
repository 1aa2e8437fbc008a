package csi

import (
	"context"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type identityServer struct {
	csi.UnimplementedIdentityServer
	name, version string
	cs            *controllerServer // nil in node mode
	ns            *nodeServer       // nil in controller mode
	reg           *registration     // nil without --register
}

func (s *identityServer) GetPluginInfo(ctx context.Context, req *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: s.name, VendorVersion: s.version}, nil
}

func (s *identityServer) GetPluginCapabilities(ctx context.Context, req *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	caps := []*csi.PluginCapability{{
		Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{
			// A new limit is live on every mount at once: no node step.
			Type: csi.PluginCapability_VolumeExpansion_ONLINE,
		}},
	}}
	if s.cs != nil {
		caps = append(caps, &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{
			Type: csi.PluginCapability_Service_CONTROLLER_SERVICE,
		}}})
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

// Probe is not ready while an nfsd the controller manages does not answer
// its admin API; the reason is logged.
func (s *identityServer) Probe(ctx context.Context, req *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	ready, why := s.ready(ctx)
	if !ready {
		logFrom(ctx).Warn("not ready", "reason", why)
	}
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(ready)}, nil
}

func (s *identityServer) ready(ctx context.Context) (bool, string) {
	// Every reason at once: an operator fixing a node wants the whole list,
	// not one problem per restart.
	var why []string
	if s.cs != nil {
		if err := s.cs.probe(ctx); err != nil {
			why = append(why, err.Error())
		}
	}
	if s.ns != nil {
		if err := s.ns.probe(); err != nil {
			why = append(why, err.Error())
		}
	}
	if s.reg != nil {
		if r := s.reg.refused(); r != "" {
			why = append(why, "kubelet refused the plugin registration: "+r)
		}
	}
	return len(why) == 0, strings.Join(why, "; ")
}

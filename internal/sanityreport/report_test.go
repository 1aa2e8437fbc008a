package sanityreport

import "testing"

func TestParse(t *testing.T) {
	report := `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="6">
  <testsuite name="CSI Driver Test Suite" tests="6">
    <testcase name="[SynchronizedBeforeSuite]" status="passed"></testcase>
    <testcase name="[It] Node Service should work" status="passed"></testcase>
    <testcase name="[It] Controller Service CreateVolume should fail when no name is provided" status="failed">
      <failure message="Expected InvalidArgument" type="failed">details</failure>
    </testcase>
    <testcase name="[It] Controller Service ControllerPublishVolume should work" status="skipped">
      <skipped message="skipped - ControllerPublishVolume not supported"></skipped>
    </testcase>
    <testcase name="[It] Node Service NodeStageVolume should fail" status="skipped">
      <skipped message="skipped"></skipped>
    </testcase>
    <testcase name="[It] Controller Service ListVolumes pagination" status="pending">
      <skipped message="pending"></skipped>
    </testcase>
  </testsuite>
</testsuites>`
	r, err := Parse([]byte(report))
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed != 1 || r.Failed != 1 || r.NotRun != 1 || len(r.Skipped) != 2 || len(r.Failures) != 1 {
		t.Fatalf("%+v", r)
	}
	if r.Skipped[0] != "Controller Service ControllerPublishVolume should work: ControllerPublishVolume not supported" || r.Skipped[1] != "Controller Service ListVolumes pagination: pending" {
		t.Fatalf("skipped %q", r.Skipped)
	}
	if r.Failures[0] != "Controller Service CreateVolume should fail when no name is provided: Expected InvalidArgument" {
		t.Fatalf("failures %q", r.Failures)
	}
	if _, err := Parse([]byte("not xml")); err == nil {
		t.Fatal("parsed garbage")
	}
}

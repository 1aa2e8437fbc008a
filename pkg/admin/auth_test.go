package admin

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

func TestAdminAuth(t *testing.T) {
	_, _, logs, sock := startAdmin(t)
	ctx := context.Background()
	_, err := client(t, sock, "").ListVolumes(ctx, &adminv1.ListVolumesRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = client(t, sock, "wrong-token-wrong-token").CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "x"})
	wantCode(t, err, codes.Unauthenticated)
	if !strings.Contains(logs.String(), "admin call refused") || !strings.Contains(logs.String(), "reason=\"wrong token\"") {
		t.Fatalf("refusals not logged:\n%s", logs)
	}
	if _, err := client(t, sock, testToken).ListVolumes(ctx, &adminv1.ListVolumesRequest{}); err != nil {
		t.Fatal(err)
	}
	// Without a token file the API does not start.
	if _, err := Start(Config{Listen: "127.0.0.1:0"}, nil, nil, slog.Default()); err == nil {
		t.Fatal("started without a token")
	}
}

package openstack_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/services/provisioner/compute"
	"github.com/elbcloud/elb/services/provisioner/compute/computetest"
	"github.com/elbcloud/elb/services/provisioner/compute/openstack"
	"github.com/elbcloud/elb/services/provisioner/compute/openstack/fakenova"
	"github.com/gophercloud/gophercloud/v2"
)

func newDriver(t *testing.T, nova *fakenova.Server) *openstack.Driver {
	t.Helper()
	d, err := openstack.New(openstack.Config{
		Auth:   gophercloud.AuthOptions{IdentityEndpoint: nova.IdentityEndpoint(), Username: "elb", Password: "secret", DomainName: "Default", TenantName: "elb"},
		Flavor: "m1.small", Image: "tengine-img", Network: "net-uuid", NATSURL: "nats://10.0.0.1:4222", AgentSecret: "agent-secret",
		PollInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestOpenStackDriverContract(t *testing.T) {
	computetest.Run(t, func(t *testing.T) computetest.Harness {
		nova := fakenova.New()
		t.Cleanup(nova.Close)
		return computetest.Harness{
			Driver:       newDriver(t, nova),
			Exists:       func(id string) bool { return slices.Contains(nova.Live(), id) },
			Break:        func() { nova.NeverActive(true) },
			ReadyTimeout: 10 * time.Second,
		}
	})
}

func TestServerBootsWithUserDataThatStartsTheAgentWithItsOwnCredentials(t *testing.T) {
	nova := fakenova.New()
	defer nova.Close()
	d := newDriver(t, nova)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := d.Create(ctx, compute.Spec{NodeID: "tg-lb1-1", AvailabilityZone: "az1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(n.Address, "10.0.") {
		t.Fatalf("address = %q", n.Address)
	}
	ud, ok := nova.UserData("tg-lb1-1")
	if !ok {
		t.Fatal("no user data")
	}
	for _, want := range []string{"#!/bin/sh", "--node-id tg-lb1-1", "--user agent-tg-lb1-1", "--password " + natsx.AgentPassword("agent-secret", "tg-lb1-1"), "--nats nats://10.0.0.1:4222", "--role tengine"} {
		if !strings.Contains(ud, want) {
			t.Errorf("user data lacks %q:\n%s", want, ud)
		}
	}
}

func TestServerInErrorFailsWithNovasFault(t *testing.T) {
	nova := fakenova.New()
	defer nova.Close()
	nova.FailCreate(1)
	d := newDriver(t, nova)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := d.Create(ctx, compute.Spec{NodeID: "n1"})
	if !errors.Is(err, compute.ErrNotReady) || !errors.Is(err, openstack.ErrServerError) || !strings.Contains(err.Error(), "No valid host") {
		t.Fatalf("err = %v", err)
	}
}

func TestBadCredentialsAreAnError(t *testing.T) {
	nova := fakenova.New()
	defer nova.Close()
	d, _ := openstack.New(openstack.Config{Auth: gophercloud.AuthOptions{IdentityEndpoint: nova.IdentityEndpoint(), Username: "elb", Password: "wrong", DomainName: "Default"},
		Flavor: "f", Image: "i", Network: "n"})
	if _, err := d.Create(context.Background(), compute.Spec{NodeID: "n1"}); err == nil || !strings.Contains(err.Error(), "keystone auth") {
		t.Fatalf("err = %v", err)
	}
	if _, err := openstack.New(openstack.Config{}); !errors.Is(err, openstack.ErrConfig) {
		t.Fatalf("empty config: %v", err)
	}
}

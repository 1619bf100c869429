// Command provisioner runs the provisioning workflow against a NATS cluster
// with the OpenStack (Nova) or the local compute driver.
//
//	provisioner --nats nats://n1:4222 --password … --agent-secret … --agent-nats nats://10.0.0.5:4222 \
//	    --driver openstack --flavor m1.small --image tengine --network <uuid>
//
// OpenStack credentials come from the usual OS_AUTH_URL, OS_USERNAME,
// OS_PASSWORD, OS_PROJECT_NAME, OS_USER_DOMAIN_NAME, OS_REGION_NAME.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/services/provisioner"
	"github.com/elbcloud/elb/services/provisioner/compute"
	"github.com/elbcloud/elb/services/provisioner/compute/local"
	"github.com/elbcloud/elb/services/provisioner/compute/openstack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "provisioner:", err)
		os.Exit(1)
	}
}

func run() error {
	urls := flag.String("nats", "nats://127.0.0.1:4222", "comma-separated NATS server URLs")
	user := flag.String("user", natsx.ServiceUser, "NATS user")
	password := flag.String("password", os.Getenv("ELB_SERVICE_PASSWORD"), "NATS password (default $ELB_SERVICE_PASSWORD)")
	agentSecret := flag.String("agent-secret", os.Getenv("ELB_AGENT_SECRET"), "secret agent passwords derive from (default $ELB_AGENT_SECRET)")
	agentNATS := flag.String("agent-nats", "", "NATS URL(s) the agents connect to")
	driverName := flag.String("driver", "local", "compute driver: local or openstack")
	dataDir := flag.String("data-dir", "/var/lib/elb/provisioner", "local driver: state and node dirs")
	agentArgv := flag.String("agent-argv", "", `local driver: JSON array argv template (default: this machine's "elb agent …")`)
	elbBinary := flag.String("elb", "elb", "local driver: elb binary for the default argv")
	flavor := flag.String("flavor", "", "openstack: flavor id")
	image := flag.String("image", "", "openstack: image id")
	network := flag.String("network", "", "openstack: network uuid")
	az := flag.String("availability-zone", "", "openstack: default availability zone")
	warm := flag.Int("warm-pool", 0, "idle tengine nodes to keep booted")
	vmReady := flag.Duration("vm-ready-timeout", 0, "deadline for a node to boot (default 120s openstack, 20s local)")
	applyTimeout := flag.Duration("apply-timeout", 30*time.Second, "deadline for agents to apply a config")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if *agentNATS == "" {
		*agentNATS = *urls
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	replicas, _ := strconv.Atoi(os.Getenv("ELB_STREAM_REPLICAS"))
	nc, js, err := natsx.Dial(ctx, natsx.DialConfig{URLs: *urls, User: *user, Password: *password, Name: "elb-provisioner", Replicas: replicas})
	if err != nil {
		return err
	}
	defer nc.Close()
	var driver compute.Driver
	deadlines := provisioner.Deadlines{VMReady: *vmReady, ConfigApplied: *applyTimeout}
	switch *driverName {
	case "local":
		argv := local.DefaultArgv(*elbBinary)
		if *agentArgv != "" {
			if err := json.Unmarshal([]byte(*agentArgv), &argv); err != nil {
				return fmt.Errorf("--agent-argv: %w", err)
			}
		}
		if deadlines.VMReady == 0 {
			deadlines.VMReady = 20 * time.Second
		}
		driver, err = local.New(ctx, local.Config{Argv: argv, DataDir: *dataDir, NATSURL: *agentNATS, AgentSecret: *agentSecret, JS: js, Logger: log})
	case "openstack":
		driver, err = openstack.New(openstack.Config{
			Auth: gophercloud.AuthOptions{IdentityEndpoint: os.Getenv("OS_AUTH_URL"), Username: os.Getenv("OS_USERNAME"), Password: os.Getenv("OS_PASSWORD"),
				TenantName: os.Getenv("OS_PROJECT_NAME"), DomainName: os.Getenv("OS_USER_DOMAIN_NAME")},
			Region: os.Getenv("OS_REGION_NAME"), Flavor: *flavor, Image: *image, Network: *network, AvailabilityZone: *az,
			NATSURL: *agentNATS, AgentSecret: *agentSecret, Logger: log,
		})
	default:
		return fmt.Errorf("unknown driver %q", *driverName)
	}
	if err != nil {
		return err
	}
	return provisioner.Run(ctx, provisioner.Config{JS: js, NC: nc, Driver: driver, Deadlines: deadlines, WarmPool: *warm, Logger: log})
}

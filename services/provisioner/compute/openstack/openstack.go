// Package openstack is the production compute driver: every tengine node is
// a Nova server created through gophercloud, booted with a cloud-init
// user-data script that starts the tengine agent with its own credentials.
package openstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"sync"
	"text/template"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/platform/natsx"
	"github.com/elbcloud/elb/services/provisioner/compute"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// ErrConfig is returned by New for an unusable configuration.
var ErrConfig = errors.New("openstack driver config")

// ErrServerError is wrapped when Nova puts a server into ERROR.
var ErrServerError = errors.New("server in ERROR")

// DefaultUserData is the cloud-init script that starts the agent. It is a
// text/template over Vars.
const DefaultUserData = `#!/bin/sh
# ELB tengine node {{.NodeID}}: started by cloud-init.
set -e
exec /usr/local/bin/elb agent --role {{.Role}} --node-id {{.NodeID}} --nats {{.NATSURL}} --user {{.User}} --password {{.Password}} --driver nginx --state-dir /var/lib/elb-agent
`

// Vars are the fields the user-data template can use.
type Vars struct {
	NodeID, Role, NATSURL, User, Password string
}

// Config configures the driver.
type Config struct {
	// Auth is the Keystone v3 login (IdentityEndpoint ending in /v3/ skips
	// version discovery). AllowReauth is forced on.
	Auth gophercloud.AuthOptions
	// Region selects the compute endpoint from the catalog.
	Region string
	// Flavor, Image and Network (a network UUID) are the defaults for
	// nodes whose spec leaves them empty. NetworkName is the key addresses
	// are read from (first network when empty).
	Flavor, Image, Network, NetworkName string
	// AvailabilityZone is the default zone.
	AvailabilityZone string
	// UserData is the user-data template; DefaultUserData when empty.
	UserData string
	// NATSURL is the URL agents connect to; AgentSecret derives passwords.
	NATSURL, AgentSecret string
	// PollInterval is how often a booting or deleting server is polled (2 s).
	PollInterval time.Duration
	// HTTPClient is used for every API call (nil: http.DefaultClient).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Driver builds nodes as Nova servers named after the node id.
type Driver struct {
	cfg      Config
	userData *template.Template
	log      *slog.Logger

	mu     sync.Mutex
	client *gophercloud.ServiceClient
}

// New validates the config. Authentication happens on first use.
func New(cfg Config) (*Driver, error) {
	if cfg.Auth.IdentityEndpoint == "" {
		return nil, fmt.Errorf("%w: identity endpoint is required", ErrConfig)
	}
	if cfg.Flavor == "" || cfg.Image == "" || cfg.Network == "" {
		return nil, fmt.Errorf("%w: flavor, image and network are required", ErrConfig)
	}
	if cfg.UserData == "" {
		cfg.UserData = DefaultUserData
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	t, err := template.New("user-data").Option("missingkey=error").Parse(cfg.UserData)
	if err != nil {
		return nil, fmt.Errorf("%w: user data: %w", ErrConfig, err)
	}
	cfg.Auth.AllowReauth = true
	d := &Driver{cfg: cfg, userData: t, log: cfg.Logger}
	if d.log == nil {
		d.log = slog.Default()
	}
	return d, nil
}

func (d *Driver) compute(ctx context.Context) (*gophercloud.ServiceClient, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.client != nil {
		return d.client, nil
	}
	pc, err := openstack.NewClient(d.cfg.Auth.IdentityEndpoint)
	if err != nil {
		return nil, fmt.Errorf("keystone client: %w", err)
	}
	if d.cfg.HTTPClient != nil {
		pc.HTTPClient = *d.cfg.HTTPClient
	}
	if err := openstack.Authenticate(ctx, pc, d.cfg.Auth); err != nil {
		return nil, fmt.Errorf("keystone auth: %w", err)
	}
	c, err := openstack.NewComputeV2(pc, gophercloud.EndpointOpts{Region: d.cfg.Region})
	if err != nil {
		return nil, fmt.Errorf("nova endpoint: %w", err)
	}
	d.client = c
	return c, nil
}

// RenderUserData renders the node's user-data script.
func (d *Driver) RenderUserData(nodeID, role string) ([]byte, error) {
	var b bytes.Buffer
	err := d.userData.Execute(&b, Vars{NodeID: nodeID, Role: role, NATSURL: d.cfg.NATSURL, User: natsx.AgentUser(nodeID), Password: natsx.AgentPassword(d.cfg.AgentSecret, nodeID)})
	if err != nil {
		return nil, fmt.Errorf("render user data: %w", err)
	}
	return b.Bytes(), nil
}

func (d *Driver) find(ctx context.Context, c *gophercloud.ServiceClient, nodeID string) (*servers.Server, error) {
	pages, err := servers.List(c, servers.ListOpts{Name: "^" + regexp.QuoteMeta(nodeID) + "$"}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list servers named %s: %w", nodeID, err)
	}
	all, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, fmt.Errorf("list servers named %s: %w", nodeID, err)
	}
	for i := range all {
		if all[i].Name == nodeID {
			return &all[i], nil
		}
	}
	return nil, nil
}

// Create boots the node's server unless one with its name exists, then waits
// for ACTIVE (or ERROR, or ctx's deadline).
func (d *Driver) Create(ctx context.Context, spec compute.Spec) (compute.Node, error) {
	if !events.ValidToken(spec.NodeID) {
		return compute.Node{}, fmt.Errorf("%w: node id %q", compute.ErrInvalidSpec, spec.NodeID)
	}
	c, err := d.compute(ctx)
	if err != nil {
		return compute.Node{}, err
	}
	srv, err := d.find(ctx, c, spec.NodeID)
	if err != nil {
		return compute.Node{}, err
	}
	if srv == nil {
		role := spec.Role
		if role == "" {
			role = events.RoleTengine
		}
		ud, err := d.RenderUserData(spec.NodeID, role)
		if err != nil {
			return compute.Node{}, err
		}
		opts := servers.CreateOpts{Name: spec.NodeID, FlavorRef: or(spec.Flavor, d.cfg.Flavor), ImageRef: or(spec.Image, d.cfg.Image),
			AvailabilityZone: or(spec.AvailabilityZone, d.cfg.AvailabilityZone), UserData: ud,
			Networks: []servers.Network{{UUID: d.cfg.Network}}, Metadata: map[string]string{"elb_node_id": spec.NodeID, "elb_role": role}}
		srv, err = servers.Create(ctx, c, opts, nil).Extract()
		if err != nil {
			return compute.Node{}, fmt.Errorf("create server %s: %w", spec.NodeID, err)
		}
		d.log.Info("nova server created", "node", spec.NodeID, "server", srv.ID)
	}
	return d.waitActive(ctx, c, spec.NodeID, srv.ID)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (d *Driver) waitActive(ctx context.Context, c *gophercloud.ServiceClient, nodeID, id string) (compute.Node, error) {
	for {
		srv, err := servers.Get(ctx, c, id).Extract()
		if err != nil && ctx.Err() == nil {
			return compute.Node{}, fmt.Errorf("%w: node %s: get server %s: %w", compute.ErrNotReady, nodeID, id, err)
		}
		if err == nil {
			switch srv.Status {
			case "ACTIVE":
				addr := d.address(srv)
				if addr != "" {
					return compute.Node{ID: nodeID, ServerID: id, Address: addr, Ready: true}, nil
				}
			case "ERROR":
				return compute.Node{}, fmt.Errorf("%w: node %s: %w: %s", compute.ErrNotReady, nodeID, ErrServerError, srv.Fault.Message)
			}
		}
		select {
		case <-ctx.Done():
			return compute.Node{}, fmt.Errorf("%w: node %s: server %s not ACTIVE: %w", compute.ErrNotReady, nodeID, id, ctx.Err())
		case <-time.After(d.cfg.PollInterval):
		}
	}
}

// address picks the node's fixed IPv4 address on the configured network.
func (d *Driver) address(srv *servers.Server) string {
	names := make([]string, 0, len(srv.Addresses))
	for n := range srv.Addresses {
		names = append(names, n)
	}
	sort.Strings(names)
	if d.cfg.NetworkName != "" {
		names = []string{d.cfg.NetworkName}
	}
	for _, n := range names {
		list, _ := srv.Addresses[n].([]any)
		for _, a := range list {
			m, _ := a.(map[string]any)
			if addr, _ := m["addr"].(string); addr != "" {
				if v, _ := m["version"].(float64); v == 4 || v == 0 {
					return addr
				}
			}
		}
	}
	return ""
}

// Delete deletes the node's server (if any) and waits until Nova no longer
// knows it.
func (d *Driver) Delete(ctx context.Context, nodeID string) error {
	c, err := d.compute(ctx)
	if err != nil {
		return err
	}
	srv, err := d.find(ctx, c, nodeID)
	if err != nil {
		return err
	}
	if srv == nil {
		return nil
	}
	if err := servers.Delete(ctx, c, srv.ID).ExtractErr(); err != nil && !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		return fmt.Errorf("delete server %s (%s): %w", srv.ID, nodeID, err)
	}
	for {
		_, err := servers.Get(ctx, c, srv.ID).Extract()
		if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			d.log.Info("nova server deleted", "node", nodeID, "server", srv.ID)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("delete server %s (%s): still there: %w", srv.ID, nodeID, ctx.Err())
		case <-time.After(d.cfg.PollInterval):
		}
	}
}

// List returns the servers that are ELB nodes (named tg-… or carrying the
// elb_node_id metadata).
func (d *Driver) List(ctx context.Context) ([]compute.Node, error) {
	c, err := d.compute(ctx)
	if err != nil {
		return nil, err
	}
	pages, err := servers.List(c, servers.ListOpts{}).AllPages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	all, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	var out []compute.Node
	for i := range all {
		s := &all[i]
		if s.Metadata["elb_node_id"] != s.Name {
			continue
		}
		out = append(out, compute.Node{ID: s.Name, ServerID: s.ID, Address: d.address(s), Ready: s.Status == "ACTIVE"})
	}
	return out, nil
}

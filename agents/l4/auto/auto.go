// Package auto picks the L4 driver of a node: ipvs, then nftables, then
// userspace, unless one is configured. Each probe says what it lacks, and
// Open logs why a driver was passed over.
package auto

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/elbcloud/elb/agents/l4"
	"github.com/elbcloud/elb/agents/l4/ipvs"
	"github.com/elbcloud/elb/agents/l4/nftables"
	"github.com/elbcloud/elb/agents/l4/userspace"
)

// ErrUnknownDriver means Config.Driver names no driver.
var ErrUnknownDriver = errors.New("unknown l4 driver")

// Config selects and configures the driver.
type Config struct {
	// Driver is "ipvs", "nftables", "userspace", or "" / "auto" to probe.
	Driver string
	// VIPInterface is passed to the ipvs driver (see ipvs.Config).
	VIPInterface string
	// NFTTable is the nftables driver's table (default "elb").
	NFTTable string
	// Copy is passed to the userspace driver (see userspace.Config).
	Copy string
	Log  *slog.Logger
}

// Order is the probing order.
var Order = []string{ipvs.Name, nftables.Name, userspace.Name}

// Open returns the configured driver, or the first one that can run here.
func Open(cfg Config) (l4.Driver, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	open := func(name string) (l4.Driver, error) {
		switch name {
		case ipvs.Name:
			return ipvs.New(ipvs.Config{VIPInterface: cfg.VIPInterface, Log: log})
		case nftables.Name:
			return nftables.New(nftables.Config{Table: cfg.NFTTable, Log: log})
		case userspace.Name:
			return userspace.New(userspace.Config{Copy: cfg.Copy, Log: log}), nil
		}
		return nil, fmt.Errorf("%w %q (want auto, %v)", ErrUnknownDriver, name, Order)
	}
	if cfg.Driver != "" && cfg.Driver != "auto" {
		return open(cfg.Driver)
	}
	var errs []error
	for _, name := range Order {
		d, err := open(name)
		if err == nil {
			log.Info("l4 driver selected", "driver", name, "passed_over", errors.Join(errs...))
			return d, nil
		}
		log.Info("l4 driver unavailable", "driver", name, "reason", err)
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

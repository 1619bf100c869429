package lvs

import (
	"fmt"
	"io"
	"os"

	"github.com/elbcloud/elb/agents/app"
	"github.com/elbcloud/elb/agents/l4/auto"
	"github.com/elbcloud/elb/agents/runtime"
	"github.com/elbcloud/elb/events"
)

// Importing this package registers the lvs role with agents/app, so that
// `elb-agent --role lvs` works: `import _ "github.com/elbcloud/elb/agents/lvs"`.
func init() { app.Register(events.RoleLVS, Factory) }

// DefaultVIPInterface is the dummy interface the ipvs driver puts VIPs on
// (ELB_LVS_VIP_INTERFACE overrides it; "none" leaves VIPs to keepalived).
const DefaultVIPInterface = "elb0"

// Factory is the app.RoleFactory of the lvs role: the L4 driver from
// cfg.Driver (ipvs, nftables, userspace; auto or empty probes in that order)
// and the role over the runtime's hooks. The closer stops health checks and
// closes the driver (kernel drivers keep forwarding).
func Factory(cfg app.Config, hooks runtime.Hooks) (runtime.Role, io.Closer, error) {
	vipIf := DefaultVIPInterface
	if v := os.Getenv("ELB_LVS_VIP_INTERFACE"); v != "" {
		vipIf = v
	}
	if vipIf == "none" {
		vipIf = ""
	}
	drv, err := auto.Open(auto.Config{Driver: cfg.Driver, VIPInterface: vipIf, Log: cfg.Logger})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: lvs driver: %w", app.ErrUsage, err)
	}
	r := New(Options{NodeID: cfg.NodeID, AvailabilityZone: cfg.AvailabilityZone, Logger: cfg.Logger}, drv, hooks)
	return r, r, nil
}

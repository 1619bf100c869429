package provisioner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/nats-io/nats.go/jetstream"
)

// testkitAgentRejecting answers for every node like testagent.InProcess but
// reports an error for configs with a listener on port bad.
func testkitAgentRejecting(e *env, bad int) error {
	kv, err := e.bus.JS.KeyValue(e.ctx, events.DesiredConfigBucket)
	if err != nil {
		return err
	}
	w, err := kv.WatchAll(e.ctx)
	if err != nil {
		return err
	}
	go func() {
		for u := range w.Updates() {
			if u == nil || u.Operation() != jetstream.KeyValuePut {
				continue
			}
			var cfg events.NodeConfig
			if json.Unmarshal(u.Value(), &cfg) != nil {
				continue
			}
			rep := events.AppliedReport{NodeID: cfg.NodeID, Version: cfg.Version, Time: time.Now()}
			for _, lb := range cfg.LoadBalancers {
				for _, l := range lb.Listeners {
					if l.Port == bad {
						rep.Error = fmt.Sprintf("rejected port %d", bad)
					}
				}
			}
			b, _ := json.Marshal(rep)
			ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			_, _ = e.bus.JS.Publish(ctx, events.AgentSubject(cfg.NodeID, events.ReportApplied), b)
			cancel()
		}
	}()
	return nil
}

package ports

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/alarm/app"
	"github.com/elbcloud/elb/services/alarm/domain"
)

func TestHandlersRejectSpoofedAndMalformedMessages(t *testing.T) {
	svc, err := app.New(nil, app.Options{Rules: domain.DefaultRules()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	samples := events.AgentSubject("n1", events.ReportSamples)
	for name, err := range map[string]error{
		"batch of another node":   HandleSamples(ctx, svc, samples, []byte(`{"node_id":"n2","points":[]}`)),
		"batch not json":          HandleSamples(ctx, svc, samples, []byte(`{`)),
		"batch on a wrong kind":   HandleSamples(ctx, svc, "elb.agent.n1.heartbeat", []byte(`{}`)),
		"heartbeat of other node": HandleHeartbeat(svc, events.AgentSubject("n1", events.ReportHeartbeat), []byte(`{"node_id":"n2"}`), 0),
		"health without target":   HandleHealthReport(svc, events.AgentSubject("n1", events.ReportHealth), []byte(`{"loadbalancer_id":"lb"}`)),
		"health of other node":    HandleHealthReport(svc, events.AgentSubject("n1", events.ReportHealth), []byte(`{"node_id":"n3","loadbalancer_id":"lb","address":"127.0.0.1","port":80}`)),
	} {
		if !errors.Is(err, app.ErrInvalidInput) {
			t.Errorf("%s: err = %v, want ErrInvalidInput", name, err)
		}
	}
	if err := HandleSamples(ctx, svc, samples, []byte(`{"node_id":"n1","points":[]}`)); err != nil {
		t.Errorf("valid batch: %v", err)
	}
	if err := HandleHeartbeat(svc, events.AgentSubject("n1", events.ReportHeartbeat), []byte(`{"node_id":"n1"}`), time.Second); err != nil {
		t.Errorf("valid heartbeat: %v", err)
	}
}

func TestNodeOfSubject(t *testing.T) {
	if n, err := NodeOfSubject("elb.agent.node-1.samples", events.ReportSamples); err != nil || n != "node-1" {
		t.Fatalf("%q %v", n, err)
	}
	for _, s := range []string{"elb.agent.samples", "elb.evt.x.y", "elb.agent.a.b.samples"} {
		if _, err := NodeOfSubject(s, events.ReportSamples); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}

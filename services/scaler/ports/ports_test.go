package ports

import (
	"errors"
	"testing"

	"github.com/elbcloud/elb/events"
	"github.com/elbcloud/elb/services/scaler/app"
	"github.com/elbcloud/elb/services/scaler/domain"
)

func TestHandleSamplesRejectsSpoofedMalformedAndStaleBatches(t *testing.T) {
	svc, err := app.New(nil, domain.DefaultPolicy(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	subject := events.AgentSubject("n1", events.ReportSamples)
	for name, err := range map[string]error{
		"batch of another node": HandleSamples(svc, subject, []byte(`{"node_id":"n2","points":[]}`)),
		"not json":              HandleSamples(svc, subject, []byte(`[`)),
		"wrong subject":         HandleSamples(svc, "elb.agent.n1.applied", []byte(`{}`)),
		"stale":                 HandleSamples(svc, subject, []byte(`{"node_id":"n1","time":"2000-01-01T00:00:00Z"}`)),
	} {
		if !errors.Is(err, app.ErrInvalidSample) {
			t.Errorf("%s: err = %v, want ErrInvalidSample", name, err)
		}
	}
}

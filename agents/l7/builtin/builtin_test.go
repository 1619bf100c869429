package builtin

import (
	"testing"

	"github.com/elbcloud/elb/agents/l7"
	"github.com/elbcloud/elb/agents/l7/l7test"
)

func TestBuiltinDriverPassesTheBehaviourSuite(t *testing.T) {
	l7test.Run(t, func(t *testing.T) l7.Driver { return New(Options{Logger: l7test.QuietLogger()}) })
}

func TestBuiltinDriverOnTheNetHTTPPathPassesTheBehaviourSuite(t *testing.T) {
	l7test.Run(t, func(t *testing.T) l7.Driver { return New(Options{NetHTTPOnly: true, Logger: l7test.QuietLogger()}) })
}

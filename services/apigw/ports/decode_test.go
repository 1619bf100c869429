package ports_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/elbcloud/elb/services/apigw/domain"
	"github.com/elbcloud/elb/services/apigw/ports"
)

func TestDecodeErrorsNameTheField(t *testing.T) {
	for body, field := range map[string]string{
		`{"listener":{"protocol_port":"80"}}`:                 "protocol_port",
		`{"listener":{"allowed_cidrs":"10.0.0.0/8"}}`:         "allowed_cidrs",
		`{"listener":{"insert_headers":{"X":1}}}`:             "insert_headers",
		`{"listener":{"colour":"red"}}`:                       "colour",
		`{"pool":{"session_persistence":{"type":"X","y":1}}}`: "session_persistence",
	} {
		wrapper := body[2 : strings.Index(body[2:], `"`)+2]
		var v any
		switch wrapper {
		case "listener":
			v = &ports.ListenerReq{}
		default:
			v = &ports.PoolReq{}
		}
		err := ports.DecodeEnvelope([]byte(body), wrapper, v)
		var fe *domain.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v (field %q), want field %q", body, err, fieldName(fe), field)
		}
	}
}

func fieldName(fe *domain.FieldError) string {
	if fe == nil {
		return ""
	}
	return fe.Field
}

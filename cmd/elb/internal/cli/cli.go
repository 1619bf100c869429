// Package cli is the API client half of the elb binary: `elb loadbalancer|
// listener|pool|member|healthmonitor create|list|show|update|delete`,
// `elb events`, with --wait progress, -o table|json, and the endpoint and
// token from flags or ELB_ENDPOINT / ELB_TOKEN. It speaks the Octavia v2 API
// over plain net/http.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultEndpoint is where `elb up` serves the API.
const DefaultEndpoint = "http://127.0.0.1:9876"

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// errUsage marks a usage error (exit code 2).
var errUsage = errors.New("usage")

// APIError is a non-2xx answer of the API.
type APIError struct {
	Status int
	Code   string
	Msg    string
}

func (e *APIError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s (HTTP %d, %s)", e.Msg, e.Status, e.Code)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status)
}

// Main runs one client command; args start with the resource name.
func Main(args []string, stdout, stderr io.Writer) int {
	r := &runner{stdout: stdout, stderr: stderr, env: os.Getenv, sleep: time.Sleep, http: &http.Client{Timeout: 60 * time.Second}}
	err := r.run(args)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "elb:", strings.TrimPrefix(err.Error(), "usage: "))
		return ExitUsage
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	}
	fmt.Fprintln(stderr, "elb:", err)
	return ExitError
}

type runner struct {
	stdout, stderr io.Writer
	env            func(string) string
	sleep          func(time.Duration)
	http           *http.Client

	endpoint string
	token    string
	output   string
	wait     bool
	timeout  time.Duration
}

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

const helpText = `usage: elb RESOURCE ACTION [ID] [flags]

resources: loadbalancer (lb), listener, pool, member, healthmonitor (hm)
actions:   create, list, show, update, delete  (loadbalancer also: status, stats, failover)
           elb events [filters]               the audit log (NDJSON with -o json)

common flags: --endpoint URL (ELB_ENDPOINT), --token T (ELB_TOKEN), -o table|json,
              --wait (follow the load balancer until ACTIVE or ERROR), --timeout 10m
Run "elb RESOURCE ACTION -h" for the flags of one command.
`

func (r *runner) run(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(r.stdout, helpText)
		return nil
	}
	res := args[0]
	switch res {
	case "lb", "loadbalancers":
		res = "loadbalancer"
	case "hm", "healthmonitors", "monitor":
		res = "healthmonitor"
	case "listeners", "pools", "members":
		res = strings.TrimSuffix(res, "s")
	}
	if res == "events" {
		return r.events(args[1:])
	}
	kind, ok := kinds[res]
	if !ok {
		return usageErr("unknown command %q (try elb help)", args[0])
	}
	if len(args) < 2 {
		return usageErr("elb %s needs an action: create, list, show, update or delete", res)
	}
	return r.resource(kind, args[1], args[2:])
}

// globalFlags adds the flags every command has.
func (r *runner) globalFlags(fs *flag.FlagSet) {
	fs.StringVar(&r.endpoint, "endpoint", "", "API endpoint (default $ELB_ENDPOINT or "+DefaultEndpoint+")")
	fs.StringVar(&r.token, "token", "", "API token (default $ELB_TOKEN)")
	fs.StringVar(&r.output, "o", "table", "output format: table or json")
	fs.StringVar(&r.output, "output", "table", "output format: table or json")
}

// parse parses flags anywhere among the positional arguments.
func (r *runner) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(r.stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageErr("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if r.endpoint == "" {
		r.endpoint = r.env("ELB_ENDPOINT")
	}
	if r.endpoint == "" {
		r.endpoint = DefaultEndpoint
	}
	if r.token == "" {
		r.token = r.env("ELB_TOKEN")
	}
	if r.output != "table" && r.output != "json" {
		return nil, usageErr("-o must be table or json")
	}
	u, err := url.Parse(r.endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErr("--endpoint %q is not an http(s) URL", r.endpoint)
	}
	r.endpoint = strings.TrimRight(r.endpoint, "/")
	return pos, nil
}

// call sends one request; out (if not nil) receives the decoded JSON answer.
func (r *runner) call(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.endpoint+path, rd)
	if err != nil {
		return err
	}
	if r.token != "" {
		req.Header.Set("X-Auth-Token", r.token)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var f struct {
			FaultString string `json:"faultstring"`
			Code        string `json:"code"`
		}
		_ = json.Unmarshal(b, &f)
		if f.FaultString == "" {
			f.FaultString = strings.TrimSpace(string(b))
			if f.FaultString == "" {
				f.FaultString = http.StatusText(resp.StatusCode)
			}
		}
		return &APIError{Status: resp.StatusCode, Code: f.Code, Msg: f.FaultString}
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

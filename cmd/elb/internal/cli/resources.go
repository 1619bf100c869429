package cli

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

type fieldType int

const (
	tString fieldType = iota
	tInt
	tBool
	tList // repeatable flag → JSON array
	tMap  // repeatable k=v flag → JSON object
)

// field maps one flag to one JSON field of the request body.
type field struct {
	flag, json string
	typ        fieldType
	usage      string
	required   bool // on create
	createOnly bool
}

// kind describes one resource for the generic commands.
type kind struct {
	name, collection, path string
	parentFlag             string // member: "pool" (the path needs it)
	fields                 []field
	columns                []string
}

func (k kind) base(parent string) string {
	if k.parentFlag != "" {
		return "/v2.0/lbaas/pools/" + url.PathEscape(parent) + "/members"
	}
	return "/v2.0/lbaas/" + k.path
}

var common = []field{
	{flag: "name", json: "name", usage: "name"},
	{flag: "description", json: "description", usage: "description"},
	{flag: "admin-state-up", json: "admin_state_up", typ: tBool, usage: "administrative state"},
	{flag: "tag", json: "tags", typ: tList, usage: "tag (repeatable)"},
}

var kinds = map[string]kind{
	"loadbalancer": {name: "loadbalancer", collection: "loadbalancers", path: "loadbalancers",
		columns: []string{"id", "name", "vip_address", "provisioning_status", "operating_status"},
		fields: append(append([]field{}, common...),
			field{flag: "vip-address", json: "vip_address", usage: "requested VIP", createOnly: true},
			field{flag: "vip-subnet-id", json: "vip_subnet_id", usage: "VIP subnet", createOnly: true},
			field{flag: "vip-network-id", json: "vip_network_id", usage: "VIP network", createOnly: true},
			field{flag: "availability-zone", json: "availability_zone", usage: "availability zone", createOnly: true},
			field{flag: "project", json: "project_id", usage: "project (admin only)", createOnly: true},
			field{flag: "l7-nodes", json: "l7_nodes", typ: tInt, usage: "tengine nodes to start with (extension)"},
			field{flag: "min-l7-nodes", json: "min_l7_nodes", typ: tInt, usage: "scaler minimum (extension)"},
			field{flag: "max-l7-nodes", json: "max_l7_nodes", typ: tInt, usage: "scaler maximum (extension)"},
		)},
	"listener": {name: "listener", collection: "listeners", path: "listeners",
		columns: []string{"id", "name", "protocol", "protocol_port", "default_pool_id", "provisioning_status", "operating_status"},
		fields: append(append([]field{}, common...),
			field{flag: "loadbalancer", json: "loadbalancer_id", usage: "load balancer id", required: true, createOnly: true},
			field{flag: "protocol", json: "protocol", usage: "TCP, UDP, HTTP, HTTPS, TERMINATED_HTTPS, SCTP", required: true, createOnly: true},
			field{flag: "port", json: "protocol_port", typ: tInt, usage: "port 1-65535", required: true, createOnly: true},
			field{flag: "default-pool", json: "default_pool_id", usage: "default pool id"},
			field{flag: "connection-limit", json: "connection_limit", typ: tInt, usage: "-1 = unlimited"},
			field{flag: "allowed-cidr", json: "allowed_cidrs", typ: tList, usage: "allowed source CIDR (repeatable)"},
			field{flag: "insert-header", json: "insert_headers", typ: tMap, usage: "header=value to insert (repeatable)"},
			field{flag: "timeout-client-data", json: "timeout_client_data", typ: tInt, usage: "ms"},
			field{flag: "timeout-member-connect", json: "timeout_member_connect", typ: tInt, usage: "ms"},
			field{flag: "timeout-member-data", json: "timeout_member_data", typ: tInt, usage: "ms"},
			field{flag: "scheduler", json: "scheduler", usage: "LVS scheduler rr wrr lc wlc sh dh sed nq mh (extension)"},
			field{flag: "forward-method", json: "forward_method", usage: "DR, NAT or TUN (extension)"},
			field{flag: "persistence-timeout", json: "persistence_timeout", typ: tInt, usage: "LVS persistence seconds (extension)"},
			field{flag: "drain-timeout", json: "connection_drain_timeout", typ: tInt, usage: "connection draining seconds (extension)"},
		)},
	"pool": {name: "pool", collection: "pools", path: "pools",
		columns: []string{"id", "name", "protocol", "lb_algorithm", "provisioning_status", "operating_status"},
		fields: append(append([]field{}, common...),
			field{flag: "loadbalancer", json: "loadbalancer_id", usage: "load balancer id (or --listener)", createOnly: true},
			field{flag: "listener", json: "listener_id", usage: "listener id: the pool becomes its default pool", createOnly: true},
			field{flag: "protocol", json: "protocol", usage: "TCP, UDP, HTTP, HTTPS, PROXY, PROXYV2, SCTP", required: true, createOnly: true},
			field{flag: "lb-algorithm", json: "lb_algorithm", usage: "ROUND_ROBIN, LEAST_CONNECTIONS, SOURCE_IP, SOURCE_IP_PORT", required: true},
			field{flag: "fail-open", json: "fail_open", typ: tBool, usage: "send to all members when all are down (extension)"},
		)},
	"member": {name: "member", collection: "members", parentFlag: "pool",
		columns: []string{"id", "name", "address", "protocol_port", "weight", "provisioning_status", "operating_status"},
		fields: []field{
			{flag: "name", json: "name", usage: "name"},
			{flag: "admin-state-up", json: "admin_state_up", typ: tBool, usage: "administrative state"},
			{flag: "tag", json: "tags", typ: tList, usage: "tag (repeatable)"},
			{flag: "address", json: "address", usage: "IP address", required: true, createOnly: true},
			{flag: "port", json: "protocol_port", typ: tInt, usage: "port 1-65535", required: true, createOnly: true},
			{flag: "weight", json: "weight", typ: tInt, usage: "0-256"},
			{flag: "backup", json: "backup", typ: tBool, usage: "backup member"},
			{flag: "monitor-address", json: "monitor_address", usage: "health check address"},
			{flag: "monitor-port", json: "monitor_port", typ: tInt, usage: "health check port"},
		}},
	"healthmonitor": {name: "healthmonitor", collection: "healthmonitors", path: "healthmonitors",
		columns: []string{"id", "name", "type", "delay", "timeout", "max_retries", "provisioning_status"},
		fields: []field{
			{flag: "name", json: "name", usage: "name"},
			{flag: "admin-state-up", json: "admin_state_up", typ: tBool, usage: "administrative state"},
			{flag: "tag", json: "tags", typ: tList, usage: "tag (repeatable)"},
			{flag: "pool", json: "pool_id", usage: "pool id", required: true, createOnly: true},
			{flag: "type", json: "type", usage: "HTTP, HTTPS, PING, TCP, TLS-HELLO, UDP-CONNECT, SCTP", required: true, createOnly: true},
			{flag: "delay", json: "delay", typ: tInt, usage: "seconds between checks", required: true},
			{flag: "timeout", json: "timeout", typ: tInt, usage: "seconds per check (< delay)", required: true},
			{flag: "max-retries", json: "max_retries", typ: tInt, usage: "successes to go up", required: true},
			{flag: "max-retries-down", json: "max_retries_down", typ: tInt, usage: "failures to go down"},
			{flag: "http-method", json: "http_method", usage: "HTTP method"},
			{flag: "url-path", json: "url_path", usage: "HTTP path"},
			{flag: "expected-codes", json: "expected_codes", usage: "e.g. 200 or 200-204"},
		}},
}

// listValue is a repeatable flag.
type listValue []string

func (l *listValue) String() string     { return strings.Join(*l, ",") }
func (l *listValue) Set(v string) error { *l = append(*l, v); return nil }

// fieldFlags registers the fields' flags and returns a function building
// the request body from the flags that were set.
func fieldFlags(fs *flag.FlagSet, fields []field, create bool) func() (map[string]any, error) {
	strs := map[string]*string{}
	lists := map[string]*listValue{}
	for _, f := range fields {
		if f.createOnly && !create {
			continue
		}
		switch f.typ {
		case tList, tMap:
			l := &listValue{}
			lists[f.flag] = l
			fs.Var(l, f.flag, f.usage)
		default:
			strs[f.flag] = fs.String(f.flag, "", f.usage)
		}
	}
	return func() (map[string]any, error) {
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		body := map[string]any{}
		for _, f := range fields {
			if f.createOnly && !create {
				continue
			}
			if !set[f.flag] {
				if create && f.required {
					return nil, usageErr("--%s is required", f.flag)
				}
				continue
			}
			switch f.typ {
			case tString:
				body[f.json] = *strs[f.flag]
			case tInt:
				n, err := strconv.Atoi(*strs[f.flag])
				if err != nil {
					return nil, usageErr("--%s: %q is not an integer", f.flag, *strs[f.flag])
				}
				body[f.json] = n
			case tBool:
				b, err := strconv.ParseBool(*strs[f.flag])
				if err != nil {
					return nil, usageErr("--%s: %q is not true or false", f.flag, *strs[f.flag])
				}
				body[f.json] = b
			case tList:
				body[f.json] = []string(*lists[f.flag])
			case tMap:
				m := map[string]string{}
				for _, kv := range *lists[f.flag] {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return nil, usageErr("--%s: %q is not key=value", f.flag, kv)
					}
					m[k] = v
				}
				body[f.json] = m
			}
		}
		return body, nil
	}
}

// resource runs ACTION on a resource kind.
func (r *runner) resource(k kind, action string, args []string) error {
	fs := flag.NewFlagSet("elb "+k.name+" "+action, flag.ContinueOnError)
	r.globalFlags(fs)
	var parent string
	if k.parentFlag != "" {
		fs.StringVar(&parent, k.parentFlag, "", k.parentFlag+" id (required)")
	}
	var build func() (map[string]any, error)
	var filters listValue
	var cascade bool
	switch action {
	case "create":
		build = fieldFlags(fs, k.fields, true)
	case "update", "set":
		action = "update"
		build = fieldFlags(fs, k.fields, false)
	case "list", "ls":
		action = "list"
		fs.Var(&filters, "filter", "field=value filter, also limit=N, sort_key=…, tags=… (repeatable)")
	case "show", "get", "delete", "rm", "status", "stats", "failover":
	default:
		return usageErr("unknown action %q for %s", action, k.name)
	}
	if action == "delete" || action == "rm" {
		action = "delete"
		if k.name == "loadbalancer" {
			fs.BoolVar(&cascade, "cascade", false, "delete the whole tree")
		}
	}
	if action != "list" && action != "show" && action != "get" && action != "status" && action != "stats" {
		fs.BoolVar(&r.wait, "wait", false, "wait until the load balancer is ACTIVE or ERROR (or deleted)")
		fs.DurationVar(&r.timeout, "timeout", 10*time.Minute, "how long --wait waits")
	}
	pos, err := r.parse(fs, args)
	if err != nil {
		return err
	}
	if k.parentFlag != "" && parent == "" {
		return usageErr("--%s is required", k.parentFlag)
	}
	needID := action != "create" && action != "list"
	if needID && len(pos) != 1 {
		return usageErr("elb %s %s needs exactly one id", k.name, action)
	}
	if !needID && len(pos) != 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	if (action == "status" || action == "stats" || action == "failover") && k.name != "loadbalancer" && !(action == "stats" && k.name == "listener") {
		return usageErr("%s has no %s", k.name, action)
	}
	base := k.base(parent)
	switch action {
	case "list":
		q := url.Values{}
		for _, f := range filters {
			key, v, ok := strings.Cut(f, "=")
			if !ok {
				return usageErr("--filter %q is not field=value", f)
			}
			q.Add(key, v)
		}
		path := base
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		var out map[string]any
		if err := r.call("GET", path, nil, &out); err != nil {
			return err
		}
		items, _ := out[k.collection].([]any)
		return r.printList(items, k.columns)
	case "show", "get":
		return r.show(base+"/"+url.PathEscape(pos[0]), k.name)
	case "status":
		var out map[string]any
		if err := r.call("GET", base+"/"+url.PathEscape(pos[0])+"/status", nil, &out); err != nil {
			return err
		}
		return r.printTree(out)
	case "failover":
		if err := r.call("PUT", base+"/"+url.PathEscape(pos[0])+"/failover", nil, nil); err != nil {
			return err
		}
		if r.output == "table" {
			fmt.Fprintf(r.stdout, "failover of loadbalancer %s accepted\n", pos[0])
		}
		if r.wait {
			return r.waitLB(pos[0], false)
		}
		return nil
	case "stats":
		var out map[string]any
		if err := r.call("GET", base+"/"+url.PathEscape(pos[0])+"/stats", nil, &out); err != nil {
			return err
		}
		return r.printObject(out["stats"])
	case "create", "update":
		body, err := build()
		if err != nil {
			return err
		}
		if action == "create" && k.name == "pool" && body["loadbalancer_id"] == nil && body["listener_id"] == nil {
			return usageErr("--loadbalancer or --listener is required")
		}
		if action == "update" && len(body) == 0 {
			return usageErr("nothing to update")
		}
		method, path := "POST", base
		if action == "update" {
			method, path = "PUT", base+"/"+url.PathEscape(pos[0])
		}
		var out map[string]any
		if err := r.call(method, path, map[string]any{k.name: body}, &out); err != nil {
			return err
		}
		obj, _ := out[k.name].(map[string]any)
		if err := r.printObject(obj); err != nil {
			return err
		}
		if r.wait {
			lb, err := r.lbOf(k, obj, parent)
			if err != nil {
				return err
			}
			return r.waitLB(lb, false)
		}
		return nil
	case "delete":
		var lb string
		if r.wait {
			if k.name == "loadbalancer" {
				lb = pos[0]
			} else {
				var out map[string]any
				if err := r.call("GET", base+"/"+url.PathEscape(pos[0]), nil, &out); err != nil {
					return err
				}
				obj, _ := out[k.name].(map[string]any)
				if lb, err = r.lbOf(k, obj, parent); err != nil {
					return err
				}
			}
		}
		path := base + "/" + url.PathEscape(pos[0])
		if cascade {
			path += "?cascade=true"
		}
		if err := r.call("DELETE", path, nil, nil); err != nil {
			return err
		}
		if r.output == "table" {
			fmt.Fprintf(r.stdout, "%s %s deleted\n", k.name, pos[0])
		}
		if r.wait {
			return r.waitLB(lb, k.name == "loadbalancer")
		}
		return nil
	}
	return nil
}

func (r *runner) show(path, wrapper string) error {
	var out map[string]any
	if err := r.call("GET", path, nil, &out); err != nil {
		return err
	}
	return r.printObject(out[wrapper])
}

// lbOf finds the load balancer a resource belongs to (for --wait).
func (r *runner) lbOf(k kind, obj map[string]any, parent string) (string, error) {
	if k.name == "loadbalancer" {
		return str(obj["id"]), nil
	}
	if lbs, ok := obj["loadbalancers"].([]any); ok && len(lbs) > 0 {
		if m, ok := lbs[0].(map[string]any); ok {
			return str(m["id"]), nil
		}
	}
	pool := parent
	if k.name == "healthmonitor" {
		if ps, ok := obj["pools"].([]any); ok && len(ps) > 0 {
			if m, ok := ps[0].(map[string]any); ok {
				pool = str(m["id"])
			}
		}
	}
	if pool == "" {
		return "", fmt.Errorf("cannot tell which load balancer %s %s belongs to", k.name, str(obj["id"]))
	}
	var out map[string]any
	if err := r.call("GET", "/v2.0/lbaas/pools/"+url.PathEscape(pool), nil, &out); err != nil {
		return "", err
	}
	p, _ := out["pool"].(map[string]any)
	return r.lbOf(kinds["pool"], p, "")
}

// waitLB polls a load balancer, printing each status change, until it is
// ACTIVE, ERROR (with the reason and log) or, for a delete, gone.
func (r *runner) waitLB(id string, deleting bool) error {
	deadline := time.Now().Add(r.timeout)
	last := ""
	for {
		var out map[string]any
		err := r.call("GET", "/v2.0/lbaas/loadbalancers/"+url.PathEscape(id), nil, &out)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.Status == 404 {
			if deleting {
				fmt.Fprintf(r.stderr, "loadbalancer %s: DELETED\n", id)
				return nil
			}
			return fmt.Errorf("loadbalancer %s disappeared", id)
		}
		if err != nil {
			return err
		}
		lb, _ := out["loadbalancer"].(map[string]any)
		st := str(lb["provisioning_status"])
		if st != last {
			fmt.Fprintf(r.stderr, "%s loadbalancer %s: %s/%s\n", time.Now().UTC().Format("15:04:05"), id, st, str(lb["operating_status"]))
			last = st
		}
		switch {
		case st == "ACTIVE" && !deleting:
			return nil
		case st == "ERROR":
			msg := "load balancer " + id + " is in ERROR"
			if l, ok := lb["provisioning_log"].(map[string]any); ok {
				msg += ": " + str(l["reason"])
				if s := str(l["step"]); s != "" {
					msg += " (step " + s + ")"
				}
				if entries, ok := l["log"].([]any); ok {
					for _, e := range entries {
						if m, ok := e.(map[string]any); ok {
							fmt.Fprintf(r.stderr, "  %s %-16s %s\n", str(m["time"]), str(m["step"]), str(m["message"]))
						}
					}
				}
			}
			return errors.New(msg)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("load balancer %s still %s after %v", id, st, r.timeout)
		}
		r.sleep(500 * time.Millisecond)
	}
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

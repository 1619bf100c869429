package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func (r *runner) printJSON(v any) error {
	enc := json.NewEncoder(r.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cell(v any) string {
	switch x := v.(type) {
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if m, ok := e.(map[string]any); ok && m["id"] != nil {
				parts = append(parts, str(m["id"]))
				continue
			}
			if _, ok := e.(map[string]any); ok {
				b, _ := json.Marshal(e)
				parts = append(parts, string(b))
				continue
			}
			parts = append(parts, str(e))
		}
		return strings.Join(parts, ",")
	case map[string]any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return str(v)
}

// printObject prints one resource: a field/value table or JSON.
func (r *runner) printObject(obj any) error {
	if r.output == "json" {
		return r.printJSON(obj)
	}
	m, _ := obj.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\n", k, cell(m[k]))
	}
	return tw.Flush()
}

// printList prints resources as a table of columns or a JSON array.
func (r *runner) printList(items []any, columns []string) error {
	if r.output == "json" {
		if items == nil {
			items = []any{}
		}
		return r.printJSON(items)
	}
	tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(columns, "\t")))
	for _, it := range items {
		m, _ := it.(map[string]any)
		row := make([]string, len(columns))
		for i, c := range columns {
			row[i] = cell(m[c])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// printTree prints a status tree indented.
func (r *runner) printTree(out map[string]any) error {
	if r.output == "json" {
		return r.printJSON(out)
	}
	st, _ := out["statuses"].(map[string]any)
	var walk func(kind string, v any, depth int)
	walk = func(kind string, v any, depth int) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		extra := ""
		if a := str(m["address"]); a != "" {
			extra = fmt.Sprintf(" %s:%s", a, str(m["protocol_port"]))
		}
		if kind == "node" {
			fmt.Fprintf(r.stdout, "%s%s %s %s\n", strings.Repeat("  ", depth), kind, str(m["id"]), str(m["address"]))
			return
		}
		fmt.Fprintf(r.stdout, "%s%s %s %s%s %s/%s\n", strings.Repeat("  ", depth), kind, str(m["id"]), str(m["name"]), extra,
			str(m["provisioning_status"]), str(m["operating_status"]))
		for _, c := range []struct{ key, kind string }{{"listeners", "listener"}, {"pools", "pool"}, {"members", "member"},
			{"l7policies", "l7policy"}, {"rules", "rule"}, {"nodes", "node"}} {
			if kind == "loadbalancer" && c.key == "pools" {
				continue // shown under their listeners
			}
			if list, ok := m[c.key].([]any); ok {
				for _, e := range list {
					walk(c.kind, e, depth+1)
				}
			}
		}
		if hm, ok := m["healthmonitor"]; ok {
			walk("healthmonitor", hm, depth+1)
		}
	}
	walk("loadbalancer", st["loadbalancer"], 0)
	return nil
}

// events streams the audit log: NDJSON passthrough (-o json) or a table.
func (r *runner) events(args []string) error {
	fs := flag.NewFlagSet("elb events", flag.ContinueOnError)
	r.globalFlags(fs)
	q := url.Values{}
	var types listValue
	for _, f := range []struct{ flag, param, usage string }{
		{"aggregate-id", "aggregate_id", "aggregate id (a load balancer id by default)"},
		{"aggregate-type", "aggregate_type", "aggregate type (loadbalancer, quota, vippool, node …)"},
		{"project", "project", "project (admin)"},
		{"since", "since", "RFC 3339 time"},
		{"until", "until", "RFC 3339 time"},
		{"from-seq", "from_seq", "first stream sequence"},
		{"to-seq", "to_seq", "last stream sequence"},
		{"limit", "limit", "at most this many events"},
	} {
		f := f
		fs.Func(f.flag, f.usage, func(v string) error { q.Set(f.param, v); return nil })
	}
	fs.Var(&types, "type", "event type (repeatable)")
	pos, err := r.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("unexpected argument %q", pos[0])
	}
	for _, t := range types {
		q.Add("type", t)
	}
	path := "/v1/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", r.endpoint+path, nil)
	if err != nil {
		return err
	}
	if r.token != "" {
		req.Header.Set("X-Auth-Token", r.token)
	}
	client := *r.http
	client.Timeout = 0
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var f struct {
			FaultString string `json:"faultstring"`
			Code        string `json:"code"`
		}
		_ = json.Unmarshal(b, &f)
		return &APIError{Status: resp.StatusCode, Code: f.Code, Msg: f.FaultString}
	}
	if r.output == "json" {
		_, err := io.Copy(r.stdout, resp.Body)
		return err
	}
	tw := tabwriter.NewWriter(r.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tAGGREGATE\tPROJECT\tACTOR")
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e struct {
			Sequence      uint64    `json:"sequence"`
			OccurredAt    time.Time `json:"occurred_at"`
			Type          string    `json:"type"`
			AggregateType string    `json:"aggregate_type"`
			AggregateID   string    `json:"aggregate_id"`
			ProjectID     string    `json:"project_id"`
			Actor         string    `json:"actor"`
			Error         string    `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		if e.Error != "" {
			_ = tw.Flush()
			return fmt.Errorf("event stream: %s", e.Error)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s/%s\t%s\t%s\n", e.Sequence, e.OccurredAt.UTC().Format(time.RFC3339), e.Type,
			e.AggregateType, e.AggregateID, e.ProjectID, e.Actor)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

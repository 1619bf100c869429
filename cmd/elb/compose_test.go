package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The production compose file cannot run here (no Docker engine), so this
// test checks that it is consistent with itself and with the repository.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   []string          `yaml:"depends_on"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func TestComposeFileIsConsistent(t *testing.T) {
	root := filepath.Join("..", "..")
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose file does not parse: %v", err)
	}
	for _, want := range []string{"nats1", "nats2", "nats3", "clickhouse", "apigw", "allocator", "provisioner", "scaler", "alarm", "stats"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Where each binary's main package lives.
	sources := map[string]string{"elb-agent": "agents/cmd/elb-agent", "elb": "cmd/elb"}
	for _, s := range []string{"apigw", "allocator", "provisioner", "scaler", "alarm", "stats"} {
		sources[s] = "services/" + s + "/cmd/" + s
	}
	nats := []string{"nats1", "nats2", "nats3"}
	ports := map[string]string{}
	lvsAgents := 0
	for name, s := range c.Services {
		for _, d := range s.DependsOn {
			if _, ok := c.Services[d]; !ok {
				t.Errorf("%s depends on undefined service %s", name, d)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("%s uses undeclared volume %s", name, src)
				}
			} else if _, err := os.Stat(filepath.Join(root, "deploy", "compose", src)); err != nil {
				t.Errorf("%s mounts missing file %s", name, src)
			}
		}
		for _, p := range s.Ports {
			host, _, _ := strings.Cut(p, ":")
			if other, dup := ports[host]; dup {
				t.Errorf("host port %s used by %s and %s", host, other, name)
			}
			ports[host] = name
		}
		if slices.Contains(nats, name) {
			routes := strings.Join(s.Command, " ")
			for _, peer := range nats {
				if peer != name && !strings.Contains(routes, "nats://"+peer+":6222") {
					t.Errorf("%s has no route to %s", name, peer)
				}
			}
			continue
		}
		if s.Image != "elb:latest" {
			continue
		}
		if len(s.Command) == 0 {
			t.Errorf("%s has no command", name)
			continue
		}
		bin := filepath.Base(s.Command[0])
		src, ok := sources[bin]
		if !ok {
			t.Errorf("%s runs unknown binary %s", name, bin)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, src, "main.go")); err != nil {
			t.Errorf("%s runs %s but %s/main.go does not exist", name, bin, src)
		}
		if !strings.Contains(string(dockerfile), "/out/"+bin) && !strings.Contains(string(dockerfile), "/out/$s") {
			t.Errorf("Dockerfile does not build %s", bin)
		}
		if strings.Contains(strings.Join(s.Command, " "), "--role lvs") || slices.Contains(s.Command, "lvs") {
			lvsAgents++
			continue
		}
		urls := s.Environment["ELB_NATS_URLS"]
		for _, n := range nats {
			if !strings.Contains(urls, "nats://"+n+":4222") {
				t.Errorf("%s does not list %s in ELB_NATS_URLS (%q)", name, n, urls)
			}
		}
	}
	if lvsAgents < 2 {
		t.Errorf("%d lvs agents, want a master/backup pair", lvsAgents)
	}
	conf, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*sync_interval:\s*always`).Match(conf) {
		t.Error("nats.conf must fsync every JetStream write (sync_interval: always)")
	}
}

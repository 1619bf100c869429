module github.com/elbcloud/elb/events

go 1.26

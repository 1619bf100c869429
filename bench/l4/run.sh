#!/bin/sh
# L4 data-plane benchmark, one bounded run on loopback inside a network
# namespace of its own (created and deleted here; root needed for nftables).
#
# Prints req/s (wrk, HTTP keep-alive and one connection per request) for:
#   direct       wrk -> nginx backend
#   nftables     wrk -> VIP, DNAT by the agent's nftables driver -> backend
#   haproxy      wrk -> HAProxy mode tcp -> backend
#   userspace    wrk -> the agent's userspace forwarder -> backend (auto copy,
#                and splice only)
# the CPU time the proxy processes spend per request, and the ratios
# nftables/direct (target >= 0.95) and userspace/haproxy (target >= 0.9).
#
# The machine is shared: every path runs ROUNDS times, interleaved; the best
# req/s and the lowest cpu/request count. CPU per request is the figure that
# other load on the machine distorts least.
#
# Env: DURATION (s per run, default 3), ROUNDS (default 3), CONNS (default 50),
#      THREADS (default 2).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}

for b in wrk nginx haproxy go ip; do
	command -v "$b" >/dev/null 2>&1 || { echo "bench-l4: $b missing"; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "bench-l4: needs root (network namespace, nftables)"; exit 2; }

WORK=$(mktemp -d /tmp/elb-bench-l4.XXXXXX)
NS=elb-bench-l4-$$
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	[ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
	sleep 0.2
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns add "$NS"
X="ip netns exec $NS"
$X ip link set lo up
# One connection per request burns through ports: reuse TIME_WAIT ones.
$X sysctl -qw net.ipv4.tcp_tw_reuse=1
$X sysctl -qw net.ipv4.ip_local_port_range="10000 65000"

echo "bench-l4: building elb-l4"
(cd "$ROOT/agents" && go build -o "$WORK/elb-l4" ./l4/cmd/elb-l4)

# Backend: nginx, one worker, a tiny fixed response.
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx;
    scgi_temp_path $WORK/nginx;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:8081;
        location / { return 200 "ok\n"; }
    }
}
EOF
$X nginx -c "$WORK/nginx.conf" -p "$WORK/nginx"
sleep 0.3

cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 4000
    pidfile $WORK/haproxy.pid
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend f
    bind 127.0.0.60:8080
    default_backend b
backend b
    balance roundrobin
    server s1 127.0.0.1:8081
EOF
$X haproxy -f "$WORK/haproxy.cfg" -q -db >"$WORK/haproxy.log" 2>&1 &
haproxy_pid=$!
PIDS="$PIDS $!"
$X "$WORK/elb-l4" -driver nftables -vip 127.0.0.50 -port 8080 -dests 127.0.0.1:8081 >"$WORK/nft.log" 2>&1 &
PIDS="$PIDS $!"
$X "$WORK/elb-l4" -driver userspace -vip 127.0.0.70 -port 8080 -dests 127.0.0.1:8081 >"$WORK/us.log" 2>&1 &
us_pid=$!
PIDS="$PIDS $!"
$X "$WORK/elb-l4" -driver userspace -copy splice -vip 127.0.0.71 -port 8080 -dests 127.0.0.1:8081 >"$WORK/usb.log" 2>&1 &
usb_pid=$!
PIDS="$PIDS $!"
direct_pid=0 # nginx's cost is in both paths; only the proxies' cpu is measured
nft_pid=0

ready() { $X wrk -t1 -c1 -d1s "$1" 2>/dev/null | awk '/requests in/ { ok = ($1 > 0) } END { exit !ok }'; }
for url in http://127.0.0.1:8081/ http://127.0.0.50:8080/ http://127.0.0.60:8080/ http://127.0.0.70:8080/ http://127.0.0.71:8080/; do
	i=0
	until ready "$url"; do
		i=$((i + 1))
		[ $i -lt 20 ] || { echo "bench-l4: $url does not answer"; cat "$WORK"/*.log; exit 1; }
		sleep 0.2
	done
done

# CPU time (clock ticks, all threads) a process has used.
ticks() { [ "$1" -gt 0 ] 2>/dev/null && awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

# run NAME URL MODE: one wrk run; keeps the best req/s and the lowest CPU
# microseconds per request of the proxy process (a figure the other load on
# a shared machine does not distort).
run() {
	name=$1 url=$2 mode=$3
	eval "pid=\$${name}_pid"
	t0=$(ticks "$pid")
	if [ "$mode" = close ]; then
		out=$($X wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -H "Connection: close" "$url" 2>/dev/null)
	else
		out=$($X wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$url" 2>/dev/null)
	fi
	t1=$(ticks "$pid")
	rps=$(echo "$out" | awk '/Requests\/sec/ { print int($2) }')
	reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
	cpu=$(awk -v a="$t0" -v b="$t1" -v n="${reqs:-0}" -v hz="$HZ" 'BEGIN { if (n > 0 && b > a) printf "%.1f", (b - a) * 1e6 / hz / n; else print 0 }')
	eval "prev=\$${name}_${mode}_rps; prevcpu=\$${name}_${mode}_cpu"
	[ "${rps:-0}" -gt "${prev:-0}" ] && eval "${name}_${mode}_rps=${rps:-0}"
	if [ "$cpu" != 0 ] && { [ "${prevcpu:-0}" = 0 ] || awk -v a="$cpu" -v b="$prevcpu" 'BEGIN { exit !(a < b) }'; }; then
		eval "${name}_${mode}_cpu=$cpu"
	fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

for n in direct nft haproxy us usb; do
	for m in ka close; do eval "${n}_${m}_rps=0 ${n}_${m}_cpu=0"; done
done
r=0
while [ $r -lt "$ROUNDS" ]; do
	r=$((r + 1))
	for mode in ka close; do
		run direct http://127.0.0.1:8081/ $mode
		run nft http://127.0.0.50:8080/ $mode
		run haproxy http://127.0.0.60:8080/ $mode
		run us http://127.0.0.70:8080/ $mode
		run usb http://127.0.0.71:8080/ $mode
	done
done

echo "bench-l4: best of $ROUNDS interleaved ${DURATION}s runs, $CONNS connections, $THREADS wrk threads, $(nproc) shared cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-30s %14s %14s %16s %16s\n' "path" "req/s k-alive" "req/s conn/req" "cpu us/req k-a" "cpu us/req c/r"
row() {
	eval "a=\$${1}_ka_rps b=\$${1}_close_rps c=\$${1}_ka_cpu d=\$${1}_close_cpu"
	[ "$c" = 0 ] && c=-
	[ "$d" = 0 ] && d=-
	printf '%-30s %14s %14s %16s %16s\n' "$2" "$a" "$b" "$c" "$d"
}
row direct "direct to nginx"
row nft "nftables DNAT"
row haproxy "haproxy mode tcp"
row us "userspace (auto copy)"
row usb "userspace (splice only)"
printf '%-30s %14s %14s   target >= 0.95\n' "nftables / direct" "$(ratio "$nft_ka_rps" "$direct_ka_rps")" "$(ratio "$nft_close_rps" "$direct_close_rps")"
printf '%-30s %14s %14s   target >= 0.90\n' "userspace / haproxy (req/s)" "$(ratio "$us_ka_rps" "$haproxy_ka_rps")" "$(ratio "$us_close_rps" "$haproxy_close_rps")"
printf '%-30s %14s %14s   (>= 0.90 means at most 1.1x the cpu)\n' "haproxy / userspace (cpu/req)" "$(ratio "$haproxy_ka_cpu" "$us_ka_cpu")" "$(ratio "$haproxy_close_cpu" "$us_close_cpu")"

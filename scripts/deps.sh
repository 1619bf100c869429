#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, only when missing.
set -euo pipefail

declare -A want=(
  [nginx]=nginx-light
  [haproxy]=haproxy
  [keepalived]=keepalived
  [nft]=nftables
  [ip]=iproute2
  [wrk]=wrk
  [qemu-system-x86_64]=qemu-system-x86
  [busybox]=busybox-static
  [cpio]=cpio
  [promtool]=prometheus
  [clickhouse-server]=clickhouse-server
  [clickhouse-client]=clickhouse-client
  [taskset]=util-linux
)
missing=()
for bin in "${!want[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("${want[$bin]}")
done
if ! ls /boot/vmlinuz-*-cloud-amd64 >/dev/null 2>&1; then missing+=(linux-image-cloud-amd64); fi
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "deps: not root and no sudo; tests that need ${missing[*]} will skip" >&2; exit 0; fi
else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packaged services are not wanted running; the tests start their own.
for svc in nginx haproxy keepalived clickhouse-server prometheus prometheus-node-exporter; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done

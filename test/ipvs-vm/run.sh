#!/bin/sh
# Runs the IPVS driver's real-kernel tests inside Debian's cloud kernel under
# qemu: this host's kernel has no IPVS.
#
# Everything is built at run time into a temp dir (removed on exit): the test
# binary of agents/l4/ipvs (CGO_ENABLED=0 go test -c), an initramfs with
# busybox, the ip_vs modules and their dependencies, and an /init that loads
# them, runs the tests and powers off. The serial console is printed; the exit
# status is the tests' (0 pass, 1 fail, 2 setup problem, 3 VM died/timeout).
#
# Usage: test/ipvs-vm/run.sh [go test -run regexp]
# Env:   KVER (default: the newest /boot/vmlinuz-*-cloud-amd64), ELB_VM_ACCEL (default tcg),
#        ELB_VM_TIMEOUT seconds (default 200), KEEP_VM_DIR=1 keeps the temp dir.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUN=${1:-InKernel}
if [ -z "${KVER:-}" ]; then
  # The newest cloud kernel Debian installed (its version changes with updates).
  KVER=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sed 's#^/boot/vmlinuz-##' | sort -V | tail -n 1)
  KVER=${KVER:-none-cloud-amd64}
fi
KERNEL=/boot/vmlinuz-$KVER
MODDIR=/lib/modules/$KVER
ACCEL=${ELB_VM_ACCEL:-tcg}
TIMEOUT=${ELB_VM_TIMEOUT:-200}

need() { command -v "$1" >/dev/null 2>&1 || { echo "ipvs-vm: SKIP: $1 missing ($2)"; exit 2; }; }
need qemu-system-x86_64 "apt-get install qemu-system-x86"
need cpio "apt-get install cpio"
need go "Go toolchain"
[ -r "$KERNEL" ] || { echo "ipvs-vm: SKIP: $KERNEL missing (apt-get install linux-image-cloud-amd64)"; exit 2; }
[ -d "$MODDIR" ] || { echo "ipvs-vm: SKIP: $MODDIR missing"; exit 2; }
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || [ -x /bin/busybox ] || { echo "ipvs-vm: SKIP: static busybox missing (apt-get install busybox-static)"; exit 2; }
[ -x /bin/busybox ] && BUSYBOX=/bin/busybox

WORK=$(mktemp -d /tmp/elb-ipvs-vm.XXXXXX)
[ "${KEEP_VM_DIR:-}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
R=$WORK/root
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/run" "$R/modules" "$R/var/run/netns"

echo "ipvs-vm: building the test binary"
(cd "$ROOT/agents" && CGO_ENABLED=0 go test -c -o "$R/elb.test" ./l4/ipvs)

cp "$BUSYBOX" "$R/bin/busybox"
for a in sh mount insmod poweroff mkdir cat echo sleep ip ls; do ln -s busybox "$R/bin/$a"; done

# Modules in load order, with their dependencies first (modules.dep).
WANT="nf_defrag_ipv4 nf_defrag_ipv6 libcrc32c nf_conntrack ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_dh ip_vs_sed ip_vs_nq ip_vs_mh veth dummy"
ORDER=""
add_mod() { # $1 = module name
	case " $ORDER " in *" $1 "*) return ;; esac
	path=$(grep -E "(^|/)$1\.ko(\.xz|\.zst|\.gz)?:" "$MODDIR/modules.dep" | head -n1 | cut -d: -f1)
	[ -n "$path" ] || { echo "ipvs-vm: module $1 not in $MODDIR (built in?)"; return 0; }
	deps=$(grep -E "^$path:" "$MODDIR/modules.dep" | cut -d: -f2)
	for dep in $deps; do
		d=$(basename "$dep"); d=${d%%.ko*}
		add_mod "$d"
	done
	case " $ORDER " in *" $1 "*) return ;; esac
	case "$path" in
	*.ko.xz) xz -dc "$MODDIR/$path" >"$R/modules/$1.ko" ;;
	*.ko.zst) zstd -qdc "$MODDIR/$path" >"$R/modules/$1.ko" ;;
	*.ko.gz) gzip -dc "$MODDIR/$path" >"$R/modules/$1.ko" ;;
	*) cp "$MODDIR/$path" "$R/modules/$1.ko" ;;
	esac
	ORDER="$ORDER $1"
}
for m in $WANT; do add_mod "$m"; done
echo "$ORDER" >"$R/modules/order"
echo "ipvs-vm: modules:$ORDER"

cat >"$R/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
for m in \$(cat /modules/order); do insmod /modules/\$m.ko 2>/dev/null || echo "ELB-VM: insmod \$m failed"; done
ip link set lo up
echo "ELB-VM: running tests"
ELB_IN_VM=1 /elb.test -test.v -test.run '$RUN' -test.timeout 150s
echo "ELB-VM-RESULT rc=\$?"
poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1 >"$WORK/initrd.gz")

echo "ipvs-vm: booting $KERNEL (accel $ACCEL)"
set +e
timeout "$TIMEOUT" qemu-system-x86_64 -kernel "$KERNEL" -initrd "$WORK/initrd.gz" \
	-append "console=ttyS0 quiet panic=-1 rdinit=/init" \
	-nographic -no-reboot -m 512 -smp 2 -accel "$ACCEL" -nic none </dev/null 2>&1 | tee "$WORK/console.log"
set -e
rc=$(sed -n 's/.*ELB-VM-RESULT rc=\([0-9]*\).*/\1/p' "$WORK/console.log" | tail -n1)
if [ -z "$rc" ]; then
	echo "ipvs-vm: FAIL: no result on the console (VM crashed or timed out after ${TIMEOUT}s)"
	exit 3
fi
if [ "$rc" = 0 ]; then
	echo "ipvs-vm: PASS"
	exit 0
fi
echo "ipvs-vm: FAIL (test binary exit $rc)"
exit 1

package ipvs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestIPVSInQemuVM boots Debian's cloud kernel under qemu with an initramfs
// holding this package's test binary and the ip_vs modules
// (test/ipvs-vm/run.sh), and checks the InKernel tests passed on the serial
// console. `make test-ipvs` runs the same script directly.
func TestIPVSInQemuVM(t *testing.T) {
	if os.Getenv("ELB_IN_VM") != "" {
		t.Skip("already inside the VM")
	}
	if testing.Short() {
		t.Skip("boots a VM (~20 s); skipped with -short")
	}
	if os.Getenv("ELB_SKIP_VM") != "" {
		t.Skip("ELB_SKIP_VM set")
	}
	for _, bin := range []string{"qemu-system-x86_64", "cpio", "go"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("ipvs VM test: %s missing (apt-get install qemu-system-x86 cpio)", bin)
		}
	}
	if kver := os.Getenv("KVER"); kver != "" {
		if _, err := os.Stat("/boot/vmlinuz-" + kver); err != nil {
			t.Skipf("ipvs VM test: kernel /boot/vmlinuz-%s missing (apt-get install linux-image-cloud-amd64)", kver)
		}
	} else if m, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64"); len(m) == 0 {
		t.Skip("ipvs VM test: no /boot/vmlinuz-*-cloud-amd64 (apt-get install linux-image-cloud-amd64)")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("ipvs VM test: /bin/busybox missing (apt-get install busybox-static)")
	}
	script, err := filepath.Abs("../../../test/ipvs-vm/run.sh")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	console := out.String()
	if code := cmd.ProcessState.ExitCode(); code == 2 {
		t.Skipf("ipvs VM test: %s", console)
	}
	results := regexp.MustCompile(`(?m)^\s*--- (PASS|FAIL|SKIP): .*$`).FindAllString(console, -1)
	for _, r := range results {
		t.Log(r)
	}
	if runErr != nil || !regexp.MustCompile(`ELB-VM-RESULT rc=0`).MatchString(console) {
		t.Fatalf("ipvs tests in the VM failed (%v); console:\n%s", runErr, console)
	}
	for _, want := range []string{"--- PASS: TestInKernelProgramsEverySchedulerAndReadsItBack", "--- PASS: TestInKernelPassesTheBehaviourSuite", "--- PASS: TestInKernelCountsConnections"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Fatalf("%q missing from the VM console:\n%s", want, console)
		}
	}
}

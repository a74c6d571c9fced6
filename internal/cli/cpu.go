package cli

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// cpuModel names this machine's CPU, as benches print it beside their
// figures (they change from machine to machine): /proc/cpuinfo's model
// name and the logical CPUs, or the architecture where there is none.
func cpuModel() string {
	name := runtime.GOARCH
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				name = strings.TrimSpace(v)
				break
			}
		}
	}
	return name + ", " + strconv.Itoa(runtime.NumCPU()) + " logical CPUs"
}

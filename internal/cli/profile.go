package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// profileFlags are the benchmarks' -cpuprofile and -memprofile flags.
type profileFlags struct {
	cpu, mem *string
}

// addProfileFlags registers -cpuprofile and -memprofile on fs; what names
// the process profiled ("the coordinator", "the run").
func addProfileFlags(fs *flag.FlagSet, what string) profileFlags {
	return profileFlags{
		cpu: fs.String("cpuprofile", "", "write a CPU profile of "+what+" to this file (go tool pprof)"),
		mem: fs.String("memprofile", "", "write an allocation profile of "+what+" to this file at the end (go tool pprof -sample_index=alloc_space)"),
	}
}

// start begins the CPU profile; the returned function stops it and writes
// the allocation profile.
func (p profileFlags) start() (stop func() error, err error) {
	stopCPU := func() error { return nil }
	if *p.cpu != "" {
		f, err := os.Create(*p.cpu)
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		stopCPU = func() error {
			pprof.StopCPUProfile()
			return f.Close()
		}
	}
	return func() error {
		err := stopCPU()
		if *p.mem == "" {
			return err
		}
		f, ferr := os.Create(*p.mem)
		if ferr != nil {
			return errors.Join(err, fmt.Errorf("memory profile: %w", ferr))
		}
		runtime.GC() // the profile's in-use figures are as of the last GC
		werr := pprof.Lookup("allocs").WriteTo(f, 0)
		return errors.Join(err, werr, f.Close())
	}, nil
}

//go:build js

package gpu

import (
	"fmt"
	"strings"
	"syscall/js"

	"github.com/cogentcore/webgpu/jsx"
	"github.com/cogentcore/webgpu/wgpu"
)

// platform holds the browser objects besides the wgpu device: the
// GPUDevice itself (for error scopes, which cogentcore does not wrap) and
// the callbacks registered on it.
type platform struct {
	dev   js.Value
	funcs []js.Func
}

func (p platform) release() {
	p.dev.Call("destroy")
	for _, f := range p.funcs {
		f.Release()
	}
}

// openPlatform requests an adapter and a device from navigator.gpu
// directly, rather than through cogentcore, whose js backend returns no
// adapter info and requests no limits. It blocks on promises: call it from
// a goroutine, never from a js.FuncOf callback.
func openPlatform(opts Options, onLost func(error)) (*wgpu.Device, platform, AdapterInfo, wgpu.Limits, error) {
	fail := func(err error) (*wgpu.Device, platform, AdapterInfo, wgpu.Limits, error) {
		return nil, platform{}, AdapterInfo{}, wgpu.Limits{}, err
	}
	gpu := js.Global().Get("navigator").Get("gpu")
	if !gpu.Truthy() {
		return fail(fmt.Errorf("%w: navigator.gpu is missing (this browser has no WebGPU, or it is disabled)", ErrNoAdapter))
	}
	request := func(fallback bool) js.Value {
		o := map[string]any{"powerPreference": "high-performance"}
		if fallback {
			o["forceFallbackAdapter"] = true
		}
		a, ok := jsx.Await(gpu.Call("requestAdapter", o))
		if !ok || !a.Truthy() {
			return js.Null()
		}
		return a
	}
	adapter := request(opts.Software == SoftwarePrefer)
	if !adapter.Truthy() && opts.Software == SoftwarePrefer {
		adapter = request(false)
	}
	if !adapter.Truthy() {
		return fail(fmt.Errorf("%w: requestAdapter returned null (in Chromium, start it with --enable-unsafe-webgpu)", ErrNoAdapter))
	}
	info := jsInfo(adapter)
	if _, ok := adapterRank(info, opts.Software); !ok || (opts.Adapter != "" &&
		!strings.Contains(strings.ToLower(info.Name+" "+info.Driver), strings.ToLower(opts.Adapter))) {
		return fail(fmt.Errorf("%w: adapter %q (%s) does not fit the options", ErrNoAdapter, info.Name, info.Type))
	}
	al := adapter.Get("limits")
	req := map[string]any{}
	for _, k := range []string{
		"maxBufferSize", "maxStorageBufferBindingSize", "maxStorageBuffersPerShaderStage",
		"maxComputeWorkgroupStorageSize", "maxComputeInvocationsPerWorkgroup",
		"maxComputeWorkgroupSizeX", "maxComputeWorkgroupSizeY", "maxComputeWorkgroupSizeZ",
		"maxComputeWorkgroupsPerDimension",
	} {
		if v := al.Get(k); v.Type() == js.TypeNumber {
			req[k] = v.Float()
		}
	}
	dev, ok := jsx.Await(adapter.Call("requestDevice", map[string]any{"requiredLimits": req}))
	if !ok || !dev.Truthy() {
		return fail(fmt.Errorf("%w: requestDevice on %q failed", ErrNoAdapter, info.Name))
	}
	var p platform
	p.dev = dev
	lost := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := ""
		if len(args) > 0 && args[0].Truthy() {
			msg = args[0].Get("message").String()
		}
		onLost(fmt.Errorf("%w: %s", ErrDeviceLost, msg)) // stores only: never block in a callback
		return nil
	})
	uncaptured := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := ""
		if len(args) > 0 && args[0].Truthy() && args[0].Get("error").Truthy() {
			msg = args[0].Get("error").Get("message").String()
		}
		onLost(fmt.Errorf("%w: uncaptured WebGPU error: %s", ErrDeviceLost, msg))
		return nil
	})
	p.funcs = append(p.funcs, lost, uncaptured)
	dev.Get("lost").Call("then", lost)
	dev.Call("addEventListener", "uncapturederror", uncaptured)
	wd := wgpu.NewDevice(dev)
	limits := wd.GetLimits().Limits
	info.MaxBufferBytes = limits.MaxBufferSize
	info.MaxStorageBinding = limits.MaxStorageBufferBindingSize
	info.MaxWorkgroupInvocations = limits.MaxComputeInvocationsPerWorkgroup
	info.MaxWorkgroupStorage = limits.MaxComputeWorkgroupStorageSize
	return &wd, p, info, limits, nil
}

// jsInfo reads GPUAdapter.info (cogentcore's GetInfo is empty on js).
func jsInfo(adapter js.Value) AdapterInfo {
	str := func(v js.Value, k string) string {
		if !v.Truthy() {
			return ""
		}
		if s := v.Get(k); s.Type() == js.TypeString {
			return s.String()
		}
		return ""
	}
	ai := adapter.Get("info")
	fallback := adapter.Get("isFallbackAdapter").Truthy() || (ai.Truthy() && ai.Get("isFallbackAdapter").Truthy())
	info := AdapterInfo{
		Vendor:  str(ai, "vendor"),
		Driver:  str(ai, "description"),
		Backend: "webgpu",
		Type:    "unknown",
	}
	info.Name = info.Driver
	if info.Name == "" {
		info.Name = strings.TrimSpace(info.Vendor + " " + str(ai, "architecture") + " " + str(ai, "device"))
	}
	if fallback {
		info.Type = "cpu"
	}
	info.Software = isSoftware(info.Type, info.Name, info.Driver, info.Vendor)
	return info
}

// waitIdle waits for the queue (onSubmittedWorkDone; Device.Poll is a
// no-op in the browser).
func (d *Device) waitIdle() error {
	d.queue.OnSubmittedWorkDone(func(wgpu.QueueWorkDoneStatus) {})
	return d.Err()
}

// mapRead maps a staging buffer. cogentcore's MapAsync reports success
// even when the promise rejects; a failed mapping shows when readMapped
// reads the range.
func (d *Device) mapRead(b *wgpu.Buffer, size uint64) error {
	if err := b.MapAsync(wgpu.MapModeRead, 0, size, func(wgpu.BufferMapAsyncStatus) {}); err != nil {
		return fmt.Errorf("%w: map for read: %v", ErrGPU, err)
	}
	return d.Err()
}

// readMapped copies a mapped range into dst; getMappedRange throws (a Go
// panic through syscall/js) when the mapping failed.
func readMapped(b *wgpu.Buffer, dst []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: read mapped buffer: %v", ErrDeviceLost, r)
		}
	}()
	copy(dst, b.GetMappedRange(0, uint(len(dst))))
	return nil
}

func endPass(p *wgpu.ComputePassEncoder) error {
	p.End()
	return nil
}

// scopeBegin pushes validation and out-of-memory error scopes: in the
// browser, errors of encoding and submission surface only there.
func (d *Device) scopeBegin() error {
	d.plat.dev.Call("pushErrorScope", "out-of-memory")
	d.plat.dev.Call("pushErrorScope", "validation")
	return nil
}

// scopeEnd pops the scopes of scopeBegin and returns their first error.
func (d *Device) scopeEnd() error {
	var msgs []string
	for range 2 {
		e, ok := jsx.Await(d.plat.dev.Call("popErrorScope"))
		if !ok {
			msgs = append(msgs, "popErrorScope rejected")
			continue
		}
		if e.Truthy() {
			msgs = append(msgs, e.Get("message").String())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

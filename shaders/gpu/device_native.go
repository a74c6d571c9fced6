//go:build !js && cgo && (darwin || windows || (linux && (amd64 || arm64)))

package gpu

import (
	"fmt"
	"strings"
	"time"

	"github.com/cogentcore/webgpu/wgpu"
)

// waitLimit bounds how long a submission may take before the device is
// declared lost (far beyond MaxSubmit: a hung or broken driver).
const waitLimit = 2 * time.Minute

// platform holds what the native build keeps besides the device.
type platform struct {
	inst    *wgpu.Instance
	adapter *wgpu.Adapter
}

func (p platform) release() {
	p.adapter.Release()
	p.inst.Release()
}

// openPlatform enumerates the adapters of the primary backends (Vulkan,
// Metal, D3D12), picks one and opens a device with the adapter's buffer and
// workgroup limits.
func openPlatform(opts Options, _ func(error)) (*wgpu.Device, platform, AdapterInfo, wgpu.Limits, error) {
	if err := checkLayout(); err != nil {
		return nil, platform{}, AdapterInfo{}, wgpu.Limits{}, err
	}
	// A nil descriptor: with one, cogentcore v0.23.0 mallocs the instance
	// extras without zeroing them, and wgpu-native then reads a garbage GLES
	// version and path pointers (it aborted here on the second Open).
	inst := wgpu.CreateInstance(nil)
	adapters := inst.EnumerateAdapters(&wgpu.InstanceEnumerateAdapterOptons{Backends: wgpu.InstanceBackendPrimary})
	var cands []candidate
	var found []string
	for i, a := range adapters {
		info := nativeInfo(a)
		cands = append(cands, candidate{index: i, info: info})
		found = append(found, fmt.Sprintf("%q (%s, %s)", info.Name, info.Type, info.Backend))
	}
	pick := pickAdapter(cands, opts)
	for i, a := range adapters {
		if i != pick {
			a.Release()
		}
	}
	if pick < 0 {
		inst.Release()
		if len(found) == 0 {
			return nil, platform{}, AdapterInfo{}, wgpu.Limits{}, fmt.Errorf("%w: no Vulkan, Metal or D3D12 adapter found", ErrNoAdapter)
		}
		return nil, platform{}, AdapterInfo{}, wgpu.Limits{}, fmt.Errorf("%w: none of %s fits the options (software %d, adapter %q)",
			ErrNoAdapter, strings.Join(found, ", "), opts.Software, opts.Adapter)
	}
	adapter := adapters[pick]
	info := cands[pick].info
	al := adapter.GetLimits().Limits
	req := wgpu.DefaultLimits()
	req.MaxBufferSize = al.MaxBufferSize
	req.MaxStorageBufferBindingSize = al.MaxStorageBufferBindingSize
	req.MaxStorageBuffersPerShaderStage = al.MaxStorageBuffersPerShaderStage
	req.MaxComputeWorkgroupStorageSize = al.MaxComputeWorkgroupStorageSize
	req.MaxComputeInvocationsPerWorkgroup = al.MaxComputeInvocationsPerWorkgroup
	req.MaxComputeWorkgroupSizeX = al.MaxComputeWorkgroupSizeX
	req.MaxComputeWorkgroupSizeY = al.MaxComputeWorkgroupSizeY
	req.MaxComputeWorkgroupSizeZ = al.MaxComputeWorkgroupSizeZ
	req.MaxComputeWorkgroupsPerDimension = al.MaxComputeWorkgroupsPerDimension
	// No DeviceLostCallback: cogentcore v0.23.0 hands C a Go pointer for
	// it, which the cgo checker rejects. A lost device shows instead in the
	// status of the next submission or mapping, which flush and mapRead turn
	// into ErrDeviceLost.
	dev, err := adapter.RequestDevice(&wgpu.DeviceDescriptor{
		Label:          "neurolov",
		RequiredLimits: &wgpu.RequiredLimits{Limits: req},
	})
	if err != nil {
		adapter.Release()
		inst.Release()
		return nil, platform{}, AdapterInfo{}, wgpu.Limits{}, fmt.Errorf("%w: request device on %q: %v", ErrNoAdapter, info.Name, err)
	}
	limits := dev.GetLimits().Limits
	info.MaxBufferBytes = limits.MaxBufferSize
	info.MaxStorageBinding = limits.MaxStorageBufferBindingSize
	info.MaxWorkgroupInvocations = limits.MaxComputeInvocationsPerWorkgroup
	info.MaxWorkgroupStorage = limits.MaxComputeWorkgroupStorageSize
	return dev, platform{inst: inst, adapter: adapter}, info, limits, nil
}

// nativeInfo describes an adapter. wgpu-native's Name is a device id on
// Vulkan ("0x0"); the readable name is the driver description.
func nativeInfo(a *wgpu.Adapter) AdapterInfo {
	ai := a.GetInfo()
	name := ai.DriverDescription
	if name == "" {
		name = ai.Name
	}
	info := AdapterInfo{
		Name:    name,
		Vendor:  ai.VendorName,
		Driver:  ai.DriverDescription,
		Backend: ai.BackendType.String(),
		Type:    ai.AdapterType.String(),
	}
	info.Software = isSoftware(info.Type, ai.Name, ai.DriverDescription, ai.VendorName)
	return info
}

// pollUntil polls the device (blocking) until done reports true, the
// device is lost or waitLimit passes.
func (d *Device) pollUntil(what string, done func() bool) error {
	deadline := time.Now().Add(waitLimit)
	for !done() {
		d.dev.Poll(true, nil)
		if err := d.Err(); err != nil {
			return err
		}
		if !done() && time.Now().After(deadline) {
			return fmt.Errorf("%w: %s did not finish within %v", ErrDeviceLost, what, waitLimit)
		}
	}
	return nil
}

// betweenRegisterAndPoll, when set (by tests only), runs after an
// asynchronous callback has been handed to wgpu-native and before the
// device is polled for it: the window in which a collection used to free
// the callback's handle (see async_native.go).
var betweenRegisterAndPoll func()

// waitIdle waits until the queue has run everything submitted.
func (d *Device) waitIdle() error {
	p := onSubmittedWorkDone(d.queue)
	defer p.free()
	if betweenRegisterAndPoll != nil {
		betweenRegisterAndPoll()
	}
	if err := d.pollUntil("submission", p.done); err != nil {
		return err
	}
	if s := wgpu.QueueWorkDoneStatus(p.status()); s != wgpu.QueueWorkDoneStatusSuccess {
		return fmt.Errorf("%w: submission finished with status %d", ErrDeviceLost, s)
	}
	return nil
}

// mapRead maps a staging buffer for reading.
func (d *Device) mapRead(b *wgpu.Buffer, size uint64) error {
	p := mapAsync(b, wgpu.MapModeRead, size)
	defer p.free()
	if msg := p.scopeErr(); msg != "" {
		return fmt.Errorf("%w: map for read: %s", ErrGPU, msg)
	}
	if betweenRegisterAndPoll != nil {
		betweenRegisterAndPoll()
	}
	if err := d.pollUntil("buffer mapping", p.done); err != nil {
		return err
	}
	if s := wgpu.BufferMapAsyncStatus(p.status()); s != wgpu.BufferMapAsyncStatusSuccess {
		return fmt.Errorf("%w: map for read: status %d", ErrDeviceLost, s)
	}
	return nil
}

// readMapped copies a mapped range into dst.
func readMapped(b *wgpu.Buffer, dst []byte) error {
	copy(dst, b.GetMappedRange(0, uint(len(dst))))
	return nil
}

func endPass(p *wgpu.ComputePassEncoder) error { return p.End() }

// Error scopes: wgpu-native reports validation errors of each call through
// the call's own error (cogentcore wraps every call in a scope), so the
// native build needs no scopes of its own.
func (d *Device) scopeBegin() error { return nil }
func (d *Device) scopeEnd() error   { return nil }

//go:build !js && cgo && (darwin || windows || (linux && (amd64 || arm64)))

package gpu

// Asynchronous wgpu-native calls, made here rather than through
// cogentcore/webgpu v0.23.0, which gets them wrong (upstream cogentcore/webgpu
// issue 6): its Queue.OnSubmittedWorkDone and Buffer.MapAsync hand C the
// address of a cgo.Handle in a Go heap word (unsafe.Pointer(&handle)). Only C
// points at that word once the call returns, so a collection before the
// callback fires frees it; once the slot is reused, the callback reads a
// garbage handle and panics inside a cgo callback ("misuse of an invalid
// Handle"), which kills the process. Its synchronous callbacks (request
// device, error scopes) are safe: a pointer passed to C stays alive for the
// call.
//
// Why here, and not one of the two other fixes:
//   - a patched copy of the module behind a replace would have to carry its
//     prebuilt static libraries too (cgo links them through ${SRCDIR}): 43 MB
//     for linux/amd64 alone, 400 MB for every platform;
//   - holding the collector off while a call is pending (SetGCPercent(-1))
//     does not stop runtime.GC() or a GOMEMLIMIT collection, and a busy GPU
//     worker would hold it off almost all the time.
//
// So the two calls are made through a C shim of our own whose callback
// writes the status into C memory that the caller owns: no Go pointer and
// no handle crosses to C, and nothing the collector does can touch it. The
// shim needs the raw C objects behind wgpu.Queue and wgpu.Buffer, which the
// module keeps in unexported fields; checkLayout verifies, at Open, that the
// layout is the one read here (go.mod pins v0.23.0), so an upgrade that
// changes it fails loudly instead of misbehaving.

/*
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// wgpu-native's entry points (webgpu.h), with its object handles as void*
// and its enums and flags as the uint32_t they are.
void wgpuQueueOnSubmittedWorkDone(void *queue, void (*callback)(uint32_t, void *), void *userdata);
void wgpuBufferMapAsync(void *buffer, uint32_t mode, size_t offset, size_t size, void (*callback)(uint32_t, void *), void *userdata);
void wgpuDevicePushErrorScope(void *device, uint32_t filter);
void wgpuDevicePopErrorScope(void *device, void (*callback)(uint32_t, char const *, void *), void *userdata);

// neurolov_async is what a pending call reports into: C memory, owned by
// the Go caller, which frees it once the callback has run.
typedef struct {
	uint32_t status;
	uint32_t done;
	char err[256];
} neurolov_async;

static void neurolov_async_done(uint32_t status, void *userdata) {
	neurolov_async *a = userdata;
	a->status = status;
	a->done = 1;
}

static void neurolov_async_error(uint32_t type, char const *message, void *userdata) {
	if (type == 0) { // WGPUErrorType_NoError
		return;
	}
	neurolov_async *a = userdata;
	strncpy(a->err, message ? message : "validation error", sizeof a->err - 1);
}

static neurolov_async *neurolov_async_new(void) {
	return calloc(1, sizeof(neurolov_async));
}

static void neurolov_on_work_done(void *queue, neurolov_async *a) {
	wgpuQueueOnSubmittedWorkDone(queue, neurolov_async_done, a);
}

// neurolov_map_async maps in a validation error scope, as cogentcore does,
// so that a bad mapping is an error of this call, not an uncaptured one.
static void neurolov_map_async(void *device, void *buffer, uint32_t mode, size_t offset, size_t size, neurolov_async *a) {
	wgpuDevicePushErrorScope(device, 0); // WGPUErrorFilter_Validation
	wgpuBufferMapAsync(buffer, mode, offset, size, neurolov_async_done, a);
	wgpuDevicePopErrorScope(device, neurolov_async_error, a);
}
*/
import "C"

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"
)

// objectRefs is the layout of wgpu.Queue and wgpu.Buffer in v0.23.0: the
// device's C object, then the queue's or buffer's.
type objectRefs struct {
	deviceRef unsafe.Pointer
	ref       unsafe.Pointer
}

// checkLayout reports whether wgpu.Queue and wgpu.Buffer are laid out as
// objectRefs.
func checkLayout() error {
	for _, typ := range []reflect.Type{reflect.TypeFor[wgpu.Queue](), reflect.TypeFor[wgpu.Buffer]()} {
		ok := typ.NumField() == 2 && typ.Size() == unsafe.Sizeof(objectRefs{})
		for i, name := range []string{"deviceRef", "ref"} {
			ok = ok && typ.Field(i).Name == name && typ.Field(i).Type.Kind() == reflect.Pointer
		}
		if !ok {
			return fmt.Errorf("%w: %s is not laid out as this executor expects of cogentcore/webgpu v0.23.0 (see shaders/gpu/async_native.go)", ErrGPU, typ)
		}
	}
	return nil
}

func refsOf[T wgpu.Queue | wgpu.Buffer](obj *T) *objectRefs {
	return (*objectRefs)(unsafe.Pointer(obj))
}

// pending is an asynchronous call in flight; its status lives in C memory.
type pending struct{ c *C.neurolov_async }

func newPending() pending { return pending{c: C.neurolov_async_new()} }

func (p pending) done() bool { return p.c.done != 0 }

func (p pending) status() uint32 { return uint32(p.c.status) }

// scopeErr is the validation error the call's error scope caught, if any.
func (p pending) scopeErr() string { return C.GoString(&p.c.err[0]) }

// free releases the call's memory once its callback has run. A call whose
// callback never ran (a lost device) is never freed: C may still write to
// it, and a leak of 264 bytes is the safe side.
func (p pending) free() {
	if p.done() {
		C.free(unsafe.Pointer(p.c))
	}
}

// onSubmittedWorkDone registers for the end of the queue's submitted work.
func onSubmittedWorkDone(q *wgpu.Queue) pending {
	p := newPending()
	C.neurolov_on_work_done(refsOf(q).ref, p.c)
	return p
}

// mapAsync starts mapping size bytes of b from offset 0.
func mapAsync(b *wgpu.Buffer, mode wgpu.MapMode, size uint64) pending {
	p := newPending()
	r := refsOf(b)
	C.neurolov_map_async(r.deviceRef, r.ref, C.uint32_t(mode), 0, C.size_t(size), p.c)
	return p
}

//go:build js || (cgo && (darwin || windows || (linux && (amd64 || arm64))))

package gpu

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

func TestInfo(t *testing.T) {
	d := device(t)
	info := d.Info()
	t.Logf("adapter %q driver %q backend %s type %s software %v", info.Name, info.Driver, info.Backend, info.Type, info.Software)
	t.Logf("variant %s (%s) %.2f GFLOP/s; tuning %v", info.Variant, info.TunedFrom, info.VariantGFLOPS, info.Tuning)
	if info.Name == "" || info.Backend == "" || info.Type == "" {
		t.Errorf("incomplete info %+v", info)
	}
	if strings.HasPrefix(info.Name, "0x") {
		t.Errorf("name %q is a device id, not a readable name", info.Name)
	}
	if info.MaxStorageBinding == 0 || info.MaxBufferBytes < info.MaxStorageBinding || info.MaxWorkgroupInvocations < 64 {
		t.Errorf("limits %+v", info)
	}
	if _, ok := VariantByName(info.Variant); !ok {
		t.Errorf("variant %q unknown", info.Variant)
	}
	if info.TunedFrom == "measured" && (len(info.Tuning) < 2 || info.Tuning[0].Variant != info.Variant || info.VariantGFLOPS <= 0) {
		t.Errorf("measured tuning inconsistent: %+v", info)
	}
}

func TestOpenNoAdapter(t *testing.T) {
	_, err := Open(Options{Adapter: "no-such-adapter-anywhere"})
	if !errors.Is(err, ErrNoAdapter) {
		t.Fatalf("Open with an impossible adapter filter: %v, want ErrNoAdapter", err)
	}
	if !strings.Contains(err.Error(), "apt-get install libvulkan1 mesa-vulkan-drivers") {
		t.Errorf("error %q does not say what to install", err)
	}
	if _, err := Open(Options{Variant: "reg9x9"}); !errors.Is(err, ErrShape) {
		t.Errorf("unknown forced variant: %v", err)
	}
}

func TestTuningCachedPerAdapter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "variants.json")
	key := tuneKey(device(t).info)
	forget := func() {
		tuneMem.Lock()
		delete(tuneMem.m, key)
		tuneMem.Unlock()
	}
	forget()
	open := func() AdapterInfo {
		d, err := Open(Options{TuneCache: path})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		return d.Info()
	}
	first := open()
	if first.TunedFrom != "measured" {
		t.Fatalf("first open: variant from %q, want measured", first.TunedFrom)
	}
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), first.Variant) {
		t.Fatalf("cache file: %v %s", err, b)
	}
	if again := open(); again.TunedFrom != "memory" || again.Variant != first.Variant {
		t.Errorf("second open: %s from %q", again.Variant, again.TunedFrom)
	}
	forget()
	if fromFile := open(); fromFile.TunedFrom != "file" || fromFile.Variant != first.Variant || fromFile.VariantGFLOPS != first.VariantGFLOPS {
		t.Errorf("after forgetting: %s from %q", fromFile.Variant, fromFile.TunedFrom)
	}
}

func TestErrors(t *testing.T) {
	d := device(t)
	a := up(t, d, make([]float32, 6), 2, 3)
	b := up(t, d, make([]float32, 8), 4, 2)
	if _, err := d.MatMul(a, b, nil, shaders.MatMulOpts{}); !errors.Is(err, ErrShape) {
		t.Errorf("2×3 by 4×2: %v", err)
	}
	if _, err := d.MatMul(a, b, nil, shaders.MatMulOpts{TransA: true, TransB: true}); err != nil {
		t.Errorf("(2×3)ᵀ by (4×2)ᵀ is 3×4: %v", err)
	}
	bias := up(t, d, make([]float32, 5), 5)
	if _, err := d.MatMul(a, up(t, d, make([]float32, 12), 3, 4), bias, shaders.MatMulOpts{}); !errors.Is(err, ErrShape) {
		t.Errorf("bias of 5 for 4 columns: %v", err)
	}
	if _, err := d.MatMulVariant("nope", a, b, nil, shaders.MatMulOpts{}); !errors.Is(err, ErrShape) {
		t.Errorf("unknown variant: %v", err)
	}
	if _, err := d.Run("matmul", []*tensor.Tensor{tensor.New(2, 3), tensor.New(4, 2)}); !errors.Is(err, shaders.ErrInputs) {
		t.Errorf("Run with bad shapes: %v", err)
	}
	if _, err := d.Run("conv", nil); !errors.Is(err, shaders.ErrUnknownKernel) {
		t.Errorf("Run of an unknown kernel: %v", err)
	}
	gone := up(t, d, make([]float32, 6), 2, 3)
	gone.Release()
	gone.Release() // idempotent
	if _, err := d.Softmax(gone); !errors.Is(err, ErrClosed) {
		t.Errorf("released tensor: %v", err)
	}
	w, err := d.Weight(tensor.New(4))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Release()
	if err := d.SGDStep(w, up(t, d, make([]float32, 4), 4), up(t, d, make([]float32, 4), 4), shaders.SGDConfig{LR: 1}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("SGD on a cached weight: %v", err)
	}
	if _, err := d.Im2Col(a, shaders.ConvGeom{Batch: 1, Channels: 1, Height: 2, Width: 3, KernelH: 5, KernelW: 1}); !errors.Is(err, ErrShape) {
		t.Errorf("im2col with a kernel larger than the input: %v", err)
	}
	huge := int(d.Info().MaxStorageBinding/4) + 1
	if _, err := d.Zeros(huge); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a tensor beyond the storage binding limit: %v", err)
	}
	z, err := d.Zeros(0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.Read(z); err != nil || len(got.Data) != 0 || got.Shape[1] != 3 {
		t.Errorf("empty tensor read: %v %v", got, err)
	}
}

func TestLostAndClosed(t *testing.T) {
	d, err := Open(Options{TuneCache: "-", Variant: Variants[0].Name()})
	if err != nil {
		t.Fatalf("%v (apt-get install libvulkan1 mesa-vulkan-drivers)", err)
	}
	x := up(t, d, []float32{1, 2, 3}, 1, 3)
	// A device reported lost (as the wgpu callbacks or a failed submission
	// would) turns every operation into ErrDeviceLost, for the worker to
	// fall back to the CPU.
	d.setLost(errors.New("simulated"))
	d.setLost(ErrDeviceLost) // the first cause is kept
	if _, err := d.Softmax(x); err == nil || err.Error() != "simulated" {
		t.Errorf("after loss: %v", err)
	}
	if _, err := d.Run("matmul", []*tensor.Tensor{tensor.New(1, 1), tensor.New(1, 1)}); err == nil {
		t.Error("Run on a lost device succeeded")
	}
	d.lost.Store(nil)
	if _, err := d.Softmax(x); err != nil {
		t.Errorf("recovered: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := d.Upload(tensor.New(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("upload after close: %v", err)
	}
	x.Release() // after close: harmless
}

func TestStaleCheck(t *testing.T) {
	for _, tt := range []struct {
		software bool
		took     time.Duration
		fails    bool
	}{
		{true, time.Second, false},
		{true, staleAfter + time.Millisecond, true},
		{false, time.Minute, false},
	} {
		if err := staleCheck(tt.software, tt.took); (err != nil) != tt.fails || (err != nil && !errors.Is(err, ErrGPU)) {
			t.Errorf("staleCheck(%v, %v) = %v", tt.software, tt.took, err)
		}
	}
}

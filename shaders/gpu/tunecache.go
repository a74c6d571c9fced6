package gpu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/neurolov/neurolov/shaders"
)

// tuneEntry is the variant measured on one adapter.
type tuneEntry struct {
	Variant  string          `json:"variant"`
	GFLOPS   float64         `json:"gflops"`
	Tuning   []VariantResult `json:"tuning,omitempty"`
	Measured time.Time       `json:"measured"`
}

// tuneMem caches measurements for the life of the process.
var tuneMem struct {
	sync.Mutex
	m map[string]tuneEntry
}

// tuneKey identifies an adapter, its driver and the kernels' sources.
func tuneKey(info AdapterInfo) string {
	return info.Name + "|" + info.Driver + "|" + info.Vendor + "|" + info.Backend + "|" + info.Type + "|wgsl " + shaders.WGSLVersion()
}

func memTune(key string) (tuneEntry, bool) {
	tuneMem.Lock()
	defer tuneMem.Unlock()
	e, ok := tuneMem.m[key]
	return e, ok
}

func setMemTune(key string, e tuneEntry) {
	tuneMem.Lock()
	defer tuneMem.Unlock()
	if tuneMem.m == nil {
		tuneMem.m = make(map[string]tuneEntry)
	}
	tuneMem.m[key] = e
}

// tunePath resolves Options.TuneCache: "" is the user cache directory, "-"
// none.
func tunePath(opt string) string {
	switch opt {
	case "-":
		return ""
	case "":
		dir, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		return filepath.Join(dir, "neurolov", "gpu-variants.json")
	}
	return opt
}

// loadTuneFile reads the cache file; a missing file is an empty cache.
func loadTuneFile(path string) (map[string]tuneEntry, error) {
	m := make(map[string]tuneEntry)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gpu: read tuning cache: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("gpu: tuning cache %s: %w", path, err)
	}
	return m, nil
}

// fileTune returns the entry for key from the cache file, if it names a
// known variant.
func fileTune(path, key string) (tuneEntry, bool) {
	if path == "" {
		return tuneEntry{}, false
	}
	m, err := loadTuneFile(path)
	if err != nil {
		return tuneEntry{}, false
	}
	e, ok := m[key]
	if _, known := VariantByName(e.Variant); !ok || !known {
		return tuneEntry{}, false
	}
	return e, true
}

// saveTune records the entry for key in the cache file (read, modify,
// write to a temporary file and rename, so readers never see half a file).
// A corrupt file is replaced.
func saveTune(path, key string, e tuneEntry) error {
	if path == "" {
		return nil
	}
	m, err := loadTuneFile(path)
	if err != nil {
		m = make(map[string]tuneEntry)
	}
	m[key] = e
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("gpu: encode tuning cache: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("gpu: tuning cache folder: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gpu-variants-*")
	if err != nil {
		return fmt.Errorf("gpu: write tuning cache: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("gpu: write tuning cache: %w", errors.Join(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("gpu: write tuning cache: %w", err)
	}
	return nil
}

package tensor

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// The safetensors format (https://github.com/huggingface/safetensors):
//
//	8 bytes      N, the header length, unsigned little-endian
//	N bytes      a UTF-8 JSON object, optionally padded with spaces:
//	             {"__metadata__": {"key": "value", ...},
//	              "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//	rest         the tensors' raw little-endian, row-major bytes; offsets are
//	             relative to the first byte after the header, and the
//	             tensors tile the rest exactly: no gaps, no overlap, nothing after.

// Errors returned by ReadSafetensors and WriteSafetensors.
var (
	// ErrSafetensors reports a malformed safetensors file, or tensors and
	// metadata that cannot be written as one.
	ErrSafetensors = errors.New("tensor: invalid safetensors")
	// ErrDtype reports a tensor stored with an element type other than F32.
	ErrDtype = errors.New("tensor: unsupported safetensors dtype")
	// ErrTooLarge reports a safetensors file over the caller's byte limit
	// or with a header over MaxHeaderBytes.
	ErrTooLarge = errors.New("tensor: safetensors file too large")
)

// MaxHeaderBytes is the largest safetensors JSON header accepted, the same
// limit as the reference implementation.
const MaxHeaderBytes = 100_000_000

// metadataKey is the header key that holds the string-to-string metadata.
const metadataKey = "__metadata__"

// ioChunk is the size of the buffer tensor data is copied through.
const ioChunk = 32 << 10

// WriteSafetensors writes tensors and metadata to w in the safetensors
// format: tensors sorted by name, laid out in that order, each as F32. The
// header is padded with spaces so the data starts 8-byte aligned, as the
// reference writer does, and "__metadata__" is written only when metadata
// is not empty. Names and metadata must be valid UTF-8, and no tensor may
// be called "__metadata__".
func WriteSafetensors(w io.Writer, tensors map[string]*Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for name, t := range tensors {
		switch {
		case t == nil:
			return fmt.Errorf("%w: tensor %q is nil", ErrSafetensors, name)
		case name == metadataKey:
			return fmt.Errorf("%w: a tensor may not be named %q", ErrSafetensors, metadataKey)
		case !utf8.ValidString(name):
			return fmt.Errorf("%w: tensor name %q is not valid UTF-8", ErrSafetensors, name)
		}
		if n := NumElements(t.Shape); n < 0 || n != len(t.Data) {
			return fmt.Errorf("%w: tensor %q has shape %v and %d elements", ErrShape, name, t.Shape, len(t.Data))
		}
		names = append(names, name)
	}
	sort.Strings(names)

	header := []byte{'{'}
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k, v := range metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return fmt.Errorf("%w: metadata %q: %q is not valid UTF-8", ErrSafetensors, k, v)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		header = appendJSONString(header, metadataKey)
		header = append(header, ":{"...)
		for i, k := range keys {
			if i > 0 {
				header = append(header, ',')
			}
			header = appendJSONString(header, k)
			header = append(header, ':')
			header = appendJSONString(header, metadata[k])
		}
		header = append(header, '}')
	}
	var offset uint64
	for i, name := range names {
		if i > 0 || len(metadata) > 0 {
			header = append(header, ',')
		}
		t := tensors[name]
		header = appendJSONString(header, name)
		header = append(header, `:{"dtype":"F32","shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				header = append(header, ',')
			}
			header = strconv.AppendInt(header, int64(d), 10)
		}
		end := offset + 4*uint64(len(t.Data))
		header = append(header, `],"data_offsets":[`...)
		header = strconv.AppendUint(header, offset, 10)
		header = append(header, ',')
		header = strconv.AppendUint(header, end, 10)
		header = append(header, "]}"...)
		offset = end
	}
	header = append(header, '}')
	for len(header)%8 != 0 {
		header = append(header, ' ')
	}
	if len(header) > MaxHeaderBytes {
		return fmt.Errorf("%w: header of %d bytes exceeds %d", ErrTooLarge, len(header), MaxHeaderBytes)
	}

	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	if _, err := w.Write(n[:]); err != nil {
		return fmt.Errorf("tensor: writing safetensors: %w", err)
	}
	if _, err := w.Write(header); err != nil {
		return fmt.Errorf("tensor: writing safetensors: %w", err)
	}
	buf := make([]byte, 0, ioChunk)
	for _, name := range names {
		for _, v := range tensors[name].Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("tensor: writing safetensors: %w", err)
				}
				buf = buf[:0]
			}
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("tensor: writing safetensors: %w", err)
		}
	}
	return nil
}

// appendJSONString appends s as a JSON string, escaping only what JSON
// requires (quote, backslash, control characters), as serde_json does, so
// the header matches the reference writer's byte for byte. s must be valid
// UTF-8.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, `\b`...)
		case c == '\f':
			b = append(b, `\f`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// entry is one tensor as its header describes it.
type entry struct {
	name       string
	shape      []int
	begin, end uint64
}

// ReadSafetensors reads a safetensors file of F32 tensors from r and
// returns its tensors by name and its metadata (empty, not nil, when the
// file has none).
//
// r is treated as hostile: the whole file may be at most maxBytes long
// (checked before the data is read, and the data is allocated only as it
// arrives), the header at most MaxHeaderBytes; the header must be one JSON
// object with no duplicate keys and no unknown fields; each tensor's shape
// must account exactly for its bytes; and the tensors must tile the data
// exactly, with no gap, no overlap and nothing after the last one. A tensor
// of any dtype but F32 is refused with ErrDtype.
func ReadSafetensors(r io.Reader, maxBytes int64) (map[string]*Tensor, map[string]string, error) {
	return ReadSafetensorsCharged(r, maxBytes, nil)
}

// ReadSafetensorsCharged is ReadSafetensors that calls hold, when not nil,
// with the bytes each buffer it allocates adds (its copy buffer, and the
// header and each tensor as they grow, by what they grow), before
// allocating it: the sum is what the read holds, never more than what has
// arrived plus as much again of the part being read, and for a whole file
// its size less 8 plus the 32 KiB copy buffer. An error from hold ends the
// read with that error, wrapped.
func ReadSafetensorsCharged(r io.Reader, maxBytes int64, hold func(n int64) error) (map[string]*Tensor, map[string]string, error) {
	if hold == nil {
		hold = func(int64) error { return nil }
	}
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, nil, fmt.Errorf("%w: reading the 8-byte header length: %w", ErrSafetensors, noEOF(err))
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	switch {
	case n > MaxHeaderBytes:
		// Over the format's own limit: more likely not a safetensors file
		// at all (its first 8 bytes read as a length) than a large one.
		return nil, nil, fmt.Errorf("%w: header length %d exceeds the format's %d: not a safetensors file?", ErrSafetensors, n, MaxHeaderBytes)
	case maxBytes < 8 || n > uint64(maxBytes-8):
		return nil, nil, fmt.Errorf("%w: header length %d exceeds the limit of %d bytes for the whole file", ErrTooLarge, n, maxBytes)
	case n < 2:
		return nil, nil, fmt.Errorf("%w: header length %d is too short for a JSON object", ErrSafetensors, n)
	}
	// The header grows as it arrives: a file that claims a 100 MB header
	// and ends costs what it sent, not the claim.
	if err := hold(ioChunk); err != nil {
		return nil, nil, fmt.Errorf("reading safetensors: %w", err)
	}
	buf := make([]byte, ioChunk)
	header, err := readGrowing(r, int(n), 1, buf, hold, func(dst, chunk []byte) []byte { return append(dst, chunk...) })
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading the %d-byte header: %w", ErrSafetensors, n, noEOF(err))
	}
	entries, metadata, err := parseHeader(header)
	if err != nil {
		return nil, nil, err
	}
	dataLen, err := checkLayout(entries)
	if err != nil {
		return nil, nil, err
	}
	if dataLen > uint64(maxBytes)-8-n {
		return nil, nil, fmt.Errorf("%w: %d header and %d data bytes exceed the limit of %d bytes", ErrTooLarge, 8+n, dataLen, maxBytes)
	}

	out := make(map[string]*Tensor, len(entries))
	for _, e := range entries {
		data, err := readGrowing(r, int((e.end-e.begin)/4), 4, buf, hold, appendFloats)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: reading tensor %q (bytes %d to %d of the data): %w", ErrSafetensors, e.name, e.begin, e.end, noEOF(err))
		}
		out[e.name] = &Tensor{Shape: e.shape, Data: data}
	}
	if k, err := r.Read(buf[:1]); k > 0 || (err != nil && err != io.EOF) {
		if k > 0 {
			return nil, nil, fmt.Errorf("%w: bytes follow the last tensor (the data must end at offset %d)", ErrSafetensors, dataLen)
		}
		return nil, nil, fmt.Errorf("%w: after the last tensor: %w", ErrSafetensors, err)
	}
	return out, metadata, nil
}

// noEOF turns a bare io.EOF, which would read as success to callers that
// test for it, into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readGrowing reads count elements of size bytes each from r through buf,
// decoding them with appendTo, and grows the result only as bytes arrive,
// so that a header that promises more than the stream holds costs no more
// memory than twice what the stream delivers. The result doubles as it
// grows (append's gentler growth of large slices would copy and allocate
// about five times the tensor), up to count; hold is told each growth, in
// bytes, before it is allocated.
func readGrowing[E any](r io.Reader, count, size int, buf []byte, hold func(int64) error, appendTo func([]E, []byte) []E) ([]E, error) {
	per := len(buf) / size
	first := min(count, per)
	if err := hold(int64(first * size)); err != nil {
		return nil, err
	}
	data := make([]E, 0, first)
	for len(data) < count {
		chunk := buf[:size*min(count-len(data), per)]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return nil, err
		}
		if need := len(data) + len(chunk)/size; need > cap(data) {
			grown := min(count, max(2*cap(data), need))
			if err := hold(int64((grown - cap(data)) * size)); err != nil {
				return nil, err
			}
			data = append(make([]E, 0, grown), data...)
		}
		data = appendTo(data, chunk)
	}
	return data, nil
}

// appendFloats appends the little-endian float32s of chunk to data.
func appendFloats(data []float32, chunk []byte) []float32 {
	for i := 0; i < len(chunk); i += 4 {
		data = append(data, math.Float32frombits(binary.LittleEndian.Uint32(chunk[i:])))
	}
	return data
}

// parseHeader decodes the JSON header into tensor entries and metadata.
func parseHeader(header []byte) ([]entry, map[string]string, error) {
	if !utf8.Valid(header) {
		return nil, nil, fmt.Errorf("%w: header is not valid UTF-8", ErrSafetensors)
	}
	if header[0] != '{' {
		return nil, nil, fmt.Errorf("%w: header starts with %q, want '{'", ErrSafetensors, header[0])
	}
	metadata := map[string]string{}
	var entries []entry
	err := walkObject(header, "header", func(key string, val json.RawMessage) error {
		if key == metadataKey {
			return walkObject(val, metadataKey, func(k string, v json.RawMessage) error {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return fmt.Errorf("%w: metadata %q is %s, want a string", ErrSafetensors, k, v)
				}
				metadata[k] = s
				return nil
			})
		}
		e, err := parseEntry(key, val)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return entries, metadata, nil
}

// walkObject calls fn for each member of the JSON object in raw, refusing
// anything but a single object with distinct keys (trailing whitespace,
// the format's padding, is allowed).
func walkObject(raw []byte, what string, fn func(key string, val json.RawMessage) error) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("%w: %s is not a JSON object", ErrSafetensors, what)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrSafetensors, what, err)
		}
		key := tok.(string) // object keys are always strings
		if seen[key] {
			return fmt.Errorf("%w: %s has key %q twice", ErrSafetensors, what, key)
		}
		seen[key] = true
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return fmt.Errorf("%w: %s, key %q: %w", ErrSafetensors, what, key, err)
		}
		if err := fn(key, val); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return fmt.Errorf("%w: %s: %w", ErrSafetensors, what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: %s has data after its closing brace", ErrSafetensors, what)
	}
	return nil
}

// parseEntry decodes one tensor's {"dtype", "shape", "data_offsets"}.
func parseEntry(name string, raw json.RawMessage) (entry, error) {
	e := entry{name: name}
	var dtype *string
	var shape []int64
	var offsets []uint64
	err := walkObject(raw, fmt.Sprintf("tensor %q", name), func(key string, val json.RawMessage) error {
		var dst any
		switch key {
		case "dtype":
			dst = &dtype
		case "shape":
			dst = &shape
		case "data_offsets":
			dst = &offsets
		default:
			return fmt.Errorf("%w: tensor %q has unknown field %q", ErrSafetensors, name, key)
		}
		if err := json.Unmarshal(val, dst); err != nil {
			return fmt.Errorf("%w: tensor %q field %q is %s: %w", ErrSafetensors, name, key, val, err)
		}
		return nil
	})
	switch {
	case err != nil:
		return e, err
	case dtype == nil || shape == nil || offsets == nil:
		return e, fmt.Errorf("%w: tensor %q lacks one of dtype, shape and data_offsets", ErrSafetensors, name)
	case *dtype != "F32":
		return e, fmt.Errorf("%w: tensor %q has dtype %q; only F32 is supported, convert it to float32 first", ErrDtype, name, *dtype)
	case len(offsets) != 2:
		return e, fmt.Errorf("%w: tensor %q has %d data_offsets, want 2", ErrSafetensors, name, len(offsets))
	case len(shape) > MaxDims:
		return e, fmt.Errorf("%w: tensor %q has rank %d, more than %d", ErrSafetensors, name, len(shape), MaxDims)
	}
	e.shape = make([]int, len(shape))
	for i, d := range shape {
		if d < 0 || d > math.MaxInt32 {
			return e, fmt.Errorf("%w: tensor %q has dimension %d", ErrSafetensors, name, d)
		}
		e.shape[i] = int(d)
	}
	numel := NumElements(e.shape)
	if numel < 0 {
		return e, fmt.Errorf("%w: tensor %q has shape %v, over %d elements", ErrTooLarge, name, e.shape, math.MaxInt32)
	}
	e.begin, e.end = offsets[0], offsets[1]
	if e.end < e.begin || e.end-e.begin != 4*uint64(numel) {
		return e, fmt.Errorf("%w: tensor %q of shape %v (%d bytes of F32) has data_offsets [%d, %d]",
			ErrSafetensors, name, e.shape, 4*numel, e.begin, e.end)
	}
	return e, nil
}

// checkLayout sorts entries by offset and checks that they tile the data
// from 0 with no gap or overlap; it returns the data's length.
func checkLayout(entries []entry) (uint64, error) {
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.end, b.end), cmp.Compare(a.name, b.name))
	})
	var next uint64
	for _, e := range entries {
		switch {
		case e.begin > next:
			return 0, fmt.Errorf("%w: gap in the data: bytes %d to %d belong to no tensor (tensor %q starts at %d)", ErrSafetensors, next, e.begin, e.name, e.begin)
		case e.begin < next:
			return 0, fmt.Errorf("%w: tensor %q (bytes %d to %d) overlaps the tensor before it, which ends at %d", ErrSafetensors, e.name, e.begin, e.end, next)
		}
		next = e.end
	}
	return next, nil
}

package weights

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"yolodistill/pkg/checkpoint"
)

// Format names the container a File was read from.
type Format string

// The formats Read recognises.
const (
	FormatCheckpoint  Format = "yolodistill checkpoint"
	FormatPaddleDir   Format = "PaddleDetection weights folder"
	FormatPaddleTar   Format = "PaddleDetection weights tar"
	FormatPdparams    Format = "Paddle .pdparams"
	FormatTorchZip    Format = "PyTorch state_dict (zip)"
	FormatTorchLegacy Format = "PyTorch state_dict (legacy)"
	FormatSafetensors Format = "safetensors"
)

// Tensor is one tensor of a weights file under the file's own name. Data
// holds product(Shape) float32 values, row-major, for floating-point tensors
// (DType "float32", "float16", "bfloat16" or "float64", converted); it is nil
// for integer and boolean tensors (step counters and the like), which no
// model parameter takes.
type Tensor struct {
	Name  string
	Shape []int
	DType string
	Data  []float32
}

// File is the content of one weights file.
type File struct {
	// Source is the path or URL the file was opened from; errors name it.
	Source string
	Format Format
	// Tensors in file order (tar member order, pickle dict order, header
	// order), every name once. Empty for FormatCheckpoint.
	Tensors []Tensor
	// Checkpoint is set for FormatCheckpoint only.
	Checkpoint *checkpoint.Checkpoint
}

// Tensor returns the tensor named name, or nil.
func (f *File) Tensor(name string) *Tensor {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i]
		}
	}
	return nil
}

// Open reads weights from a local path (Read) or an http(s) URL, downloaded
// once into cacheDir (checkpoint.DefaultCacheDir when "") and verified with
// Read before it is kept; a URL fragment "#sha256=HEX" also checks the
// digest. Errors name the URL.
func Open(ctx context.Context, pathOrURL, cacheDir string) (*File, error) {
	if !checkpoint.IsURL(pathOrURL) {
		return Read(pathOrURL)
	}
	if cacheDir == "" {
		cacheDir = checkpoint.DefaultCacheDir()
	}
	p, err := checkpoint.FetchVerified(ctx, pathOrURL, cacheDir, func(path string) error {
		_, err := Read(path)
		return err
	})
	if err != nil {
		return nil, err
	}
	f, err := Read(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pathOrURL, err)
	}
	f.Source = pathOrURL
	if f.Checkpoint != nil {
		f.Checkpoint.Path = pathOrURL
	}
	return f, nil
}

// FormatError is a file that could not be read: Source names it, Record the
// first bad record in it ("" when the file as a whole is at fault).
type FormatError struct {
	Source string
	Format Format // "" when the format itself was not recognised
	Record string
	Err    error
}

func (e *FormatError) Error() string {
	s := e.Source + ": "
	if e.Format != "" {
		s += string(e.Format) + ": "
	}
	if e.Record != "" {
		s += e.Record + ": "
	}
	return s + e.Err.Error()
}

func (e *FormatError) Unwrap() error { return e.Err }

// errUnknown is the error for content no reader recognises.
var errUnknown = errors.New("not a weights file this tool reads (a yolodistill checkpoint, a PaddleDetection weights folder or tar, a Paddle .pdparams, a PyTorch state_dict .pth/.pt, or .safetensors)")

// Read reads the weights file or PaddleDetection weights folder at path; the
// format comes from the content:
//   - a folder: one Paddle LoDTensor file per variable (save_persistables);
//   - a tar (optionally gzip-compressed) of such files (the released weights);
//   - a yolodistill checkpoint;
//   - a zip with data.pkl: a PyTorch state_dict (TorchScript archives and
//     pickled whole modules are refused: save model.state_dict());
//   - a pickle starting with PyTorch's legacy magic number: a legacy state_dict;
//   - any other pickle: a Paddle .pdparams (a dict of numpy arrays);
//   - an 8-byte header length then a JSON header: safetensors.
func Read(path string) (*File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return readPaddleDir(path)
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(fh, head)
	fh.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	head = head[:n]
	switch {
	case n == 0:
		return nil, &FormatError{Source: path, Err: errors.New("empty file")}
	case bytes.Contains(head[:min(n, 48)], []byte(checkpoint.Format)):
		c, err := checkpoint.Load(path)
		if err != nil {
			return nil, err
		}
		return &File{Source: path, Format: FormatCheckpoint, Checkpoint: c}, nil
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return readTorch(path, true)
	case n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5:
		if bytes.HasPrefix(head[2:], torchLegacyMagic) {
			return readTorch(path, false)
		}
		return readPdparams(path)
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return readPaddleTar(path, true)
	case n >= 262 && string(head[257:262]) == "ustar":
		return readPaddleTar(path, false)
	case n >= 9 && head[8] == '{' && binary.LittleEndian.Uint64(head) < uint64(st.Size()):
		return readSafetensors(path, st.Size())
	case n >= 16 && looksLikeLoDTensor(head):
		return nil, &FormatError{Source: path, Err: errors.New("a single Paddle variable file (or a save_combine parameter file, which holds no variable names): give the folder or tar of one file per variable, or a .pdparams")}
	}
	return nil, &FormatError{Source: path, Err: errUnknown}
}

// torchLegacyMagic is PyTorch's legacy magic number 0x1950a86a20f9469cfc6c
// pickled as LONG1 (the first pickle of a legacy file, after PROTO 2).
var torchLegacyMagic = []byte{0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}

func looksLikeLoDTensor(b []byte) bool {
	return binary.LittleEndian.Uint32(b) == 0 && binary.LittleEndian.Uint64(b[4:]) < 16
}

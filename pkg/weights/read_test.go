package weights_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"yolodistill/pkg/weights"
	"yolodistill/pkg/weights/weightstest"
)

// TestReadFormats: each fixture is recognised from its content, whatever
// its name.
func TestReadFormats(t *testing.T) {
	want := map[string]weights.Format{
		"mbv1_paddle.tar": weights.FormatPaddleTar, "mbv1_paddle2.pdparams": weights.FormatPdparams,
		"r18_paddle.pdparams": weights.FormatPdparams, "mbv1_torch.pth": weights.FormatTorchZip,
		"mbv1_torch.safetensors": weights.FormatSafetensors, "r18_torch_legacy.pt": weights.FormatTorchLegacy,
		"tv_resnet18.pth": weights.FormatTorchZip,
	}
	for name, format := range want {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(weightstest.Dir(t), name))
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "weights.bin") // no telling extension
			os.WriteFile(p, b, 0o644)
			f, err := weights.Read(p)
			if err != nil {
				t.Fatal(err)
			}
			if f.Format != format {
				t.Errorf("format %s, want %s", f.Format, format)
			}
			for _, tt := range f.Tensors {
				if tt.Data == nil && !strings.HasSuffix(tt.Name, "num_batches_tracked") && !strings.HasPrefix(tt.Name, "@") {
					t.Errorf("%s: no float data (%s)", tt.Name, tt.DType)
				}
			}
		})
	}
}

// TestTruncated: every fixture cut short anywhere is an error naming the
// file, never a partial model.
func TestTruncated(t *testing.T) {
	names := []string{"mbv1_paddle.tar", "mbv1_paddle2.pdparams", "r18_paddle.pdparams", "mbv1_torch.pth",
		"mbv1_torch.safetensors", "r18_torch_legacy.pt", "tv_resnet18.pth"}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(weightstest.Dir(t), name))
		if err != nil {
			t.Fatal(err)
		}
		for _, frac := range []float64{0.001, 0.1, 0.5, 0.9, 0.999} {
			n := int(float64(len(b)) * frac)
			if strings.HasSuffix(name, ".tar") && frac > 0.99 {
				// A tar ends in zero blocks padded to a 10 KiB record, which
				// readers may lose; a tar cut at a member boundary reads as
				// fewer variables, which Map reports as missing.
				continue
			}
			p := filepath.Join(t.TempDir(), "cut-"+name)
			os.WriteFile(p, b[:n], 0o644)
			f, err := weights.Read(p)
			if err == nil {
				t.Errorf("%s cut to %d of %d bytes: read %d tensors without error", name, n, len(b), len(f.Tensors))
				continue
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("%s cut to %d bytes: error does not name the file: %v", name, n, err)
			}
		}
	}
}

// TestTruncatedTarRecord: the error names the tar member that is cut.
func TestTruncatedTarRecord(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(weightstest.Dir(t), "mbv1_paddle.tar"))
	if err != nil {
		t.Fatal(err)
	}
	// Corrupt the first variable's LoDTensor version (the member data of
	// the first file, after the folder's and the file's 512-byte headers).
	c := append([]byte(nil), b...)
	c[1024] = 7
	p := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(p, c, 0o644)
	_, err = weights.Read(p)
	if err == nil || !strings.Contains(err.Error(), "mbv1_paddle/@LR_DECAY_COUNTER@") || !strings.Contains(err.Error(), "version 7") {
		t.Errorf("error %v, want it to name the first member and its bad version", err)
	}
}

// TestForeign: files that are not weights state what they are.
func TestForeign(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	// A pickle naming a class a weights file does not need.
	evil := []byte("\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"pickled module", filepath.Join(weightstest.Dir(t), "torch_module.pt"), []string{"torch_module.pt", "class __main__.Tiny", "not a state_dict", "model.state_dict()"}},
		{"torchscript", filepath.Join(weightstest.Dir(t), "torchscript.pt"), []string{"torchscript.pt", "TorchScript", "state_dict"}},
		{"text", write("notes.pth", []byte("hello, these are not weights\n")), []string{"notes.pth", "not a weights file"}},
		{"empty", write("empty.pdparams", nil), []string{"empty.pdparams", "empty file"}},
		{"pickle with os.system", write("evil.pdparams", evil), []string{"evil.pdparams", "class os.system"}},
		{"pickle of a list", write("list.pdparams", []byte("\x80\x02]q\x00.")), []string{"list.pdparams", "not a dict of arrays"}},
		{"safetensors bad offsets", write("bad.safetensors", safetensorsHeader(`{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}`)), []string{"bad.safetensors", "w:", "needs 16 bytes"}},
		{"safetensors past end", write("short.safetensors", safetensorsHeader(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`)), []string{"short.safetensors", "w:", "truncated"}},
		{"single paddle variable", write("conv1_weights", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), []string{"conv1_weights", "single Paddle variable"}},
		{"missing", filepath.Join(dir, "none.pth"), []string{"none.pth"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := weights.Read(tc.path)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
		})
	}
}

func safetensorsHeader(h string) []byte {
	n := len(h)
	b := []byte{byte(n), byte(n >> 8), 0, 0, 0, 0, 0, 0}
	return append(append(b, h...), make([]byte, 8)...)
}

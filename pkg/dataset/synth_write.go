package dataset

import (
	"context"
	"fmt"
	"image/jpeg"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"yolodistill/pkg/atomicfile"
)

// SynthJPEGQuality is the JPEG quality of synthetic images. Go's encoder is
// deterministic, so the same pixels always give the same bytes.
const SynthJPEGQuality = 90

// SynthSplits are the splits WriteSynth writes, in this order.
var SynthSplits = []string{"train", "val", "test"}

// SynthSummary counts what WriteSynth wrote.
type SynthSummary struct {
	Images  map[string]int // per split
	Objects map[string]int // per split
	Classes []string
}

// WriteSynth renders the synthetic set opts describes and writes it into dir
// (created if needed), every file atomically:
//
//   - format "voc": dir/JPEGImages/<name>.jpg, dir/Annotations/<name>.xml and
//     dir/ImageSets/Main/{train,val,test}.txt (see SynthSplit);
//   - format "coco": one COCO folder per split, dir/<split>/annotations.json
//     and dir/<split>/images/<name>.jpg.
//
// The bytes written depend only on opts (and the Go release's JPEG encoder):
// two runs give identical files. Images are rendered on up to workers
// goroutines (<= 0: GOMAXPROCS); that changes nothing in the output.
func WriteSynth(ctx context.Context, dir, format string, opts SynthOptions, workers int) (*SynthSummary, error) {
	if format != "voc" && format != "coco" {
		return nil, fmt.Errorf("synth: format %q: want voc or coco", format)
	}
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	imageDir := func(split string) string {
		if format == "voc" {
			return filepath.Join(dir, VOCImages)
		}
		return filepath.Join(dir, split, COCOImages)
	}
	for _, sp := range SynthSplits {
		if err := os.MkdirAll(imageDir(sp), 0o755); err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}

	samples := make([]Sample, opts.Images)
	errs := make([]error, opts.Images)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s, img := SynthImage(opts, i)
				samples[i] = s
				p := filepath.Join(imageDir(SynthSplit(i)), s.File)
				errs[i] = atomicfile.Write(p, func(w io.Writer) error {
					return jpeg.Encode(w, img.RGBA(), &jpeg.Options{Quality: SynthJPEGQuality})
				})
			}
		}()
	}
	var cerr error
feed:
	for i := 0; i < opts.Images; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			cerr = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if cerr != nil {
		return nil, cerr
	}
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}

	names := opts.Classes
	if len(opts.Names) > 0 {
		names = opts.Names
	}
	sum := &SynthSummary{Images: map[string]int{}, Objects: map[string]int{}, Classes: append([]string(nil), names...)}
	for _, sp := range SynthSplits {
		ds := &Dataset{ImageRoot: imageDir(sp), Classes: sum.Classes}
		for i := range samples {
			if SynthSplit(i) == sp {
				ds.Samples = append(ds.Samples, samples[i])
				sum.Objects[sp] += len(samples[i].Objects)
			}
		}
		sum.Images[sp] = len(ds.Samples)
		var err error
		if format == "voc" {
			err = WriteVOC(dir, ds, VOCWriteOptions{Split: sp, Images: ImagesNone})
		} else {
			err = WriteCOCO(filepath.Join(dir, sp), ds, COCOWriteOptions{Images: ImagesNone})
		}
		if err != nil {
			return nil, fmt.Errorf("synth: %w", err)
		}
	}
	return sum, nil
}

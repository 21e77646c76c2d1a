package dataset

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"yolodistill/pkg/config"
)

// Split is one split of a configuration's dataset: its samples (ground truth,
// pixel boxes as pkg/dataset reads them) and the source that decodes or
// renders their images, in the same order.
type Split struct {
	Name   string   // the split's name ("test", "val", ...)
	DS     *Dataset // Classes are data.classes
	Source Source   // Source.Load(i) is DS.Samples[i]'s image and targets
	// Problems are what the reader found (warnings about repaired or dropped
	// boxes, errors about samples left out). OpenSplit fails when there is
	// an error-severity problem unless AllowErrors was set.
	Problems Problems
	// Where says where the split came from, for messages: a folder or file,
	// or "synthetic (in memory)".
	Where string
}

// SplitOptions tune OpenSplit.
type SplitOptions struct {
	// Root replaces data.root when not empty.
	Root string
	// AllowErrors keeps going when the reader reports errors (the samples in
	// error are left out of DS); otherwise they make OpenSplit fail.
	AllowErrors bool
	// Images is how far image files are checked when the split is read
	// (ImageHeader by default).
	Images ImageCheck
}

// MaxPixels is the image pixel limit a configuration implies: data.max_image_side
// squared, or DefaultMaxPixels when it is 0.
func MaxPixels(cfg *config.Config) int {
	if s := cfg.Data.MaxImageSide; s > 0 {
		return s * s
	}
	return DefaultMaxPixels
}

// OpenSplit opens split (e.g. cfg.Data.EvalSplit) of the configuration's
// dataset (data.format):
//
//   - "voc": a Pascal VOC folder, ImageSets/Main/<split>.txt;
//   - "coco": root/annotations/instances_<split>.json with images in
//     root/<split>/ (COCO's layout), or root/<split>/annotations.json with
//     root/<split>/images/ (what `dataset synth --format coco` writes), or
//     root itself when it holds annotations.json (one folder, the split name
//     is then not used);
//   - "synth": with an empty root, the built-in synthetic set rendered in
//     memory from data.synth (split "train", "val" or "test", see
//     SynthSplit; deterministic); with a root, the folder `dataset
//     synth` wrote (VOC layout when root/Annotations exists, else COCO).
//
// Class names are data.classes (label i is data.classes[i]). Errors name the
// folder or file.
func OpenSplit(cfg *config.Config, split string, opt SplitOptions) (*Split, error) {
	root := cfg.Data.Root
	if opt.Root != "" {
		root = opt.Root
	}
	if split == "" {
		return nil, errors.New("data: no split name given")
	}
	maxPx := MaxPixels(cfg)
	format := cfg.Data.Format
	if format == "synth" {
		if root == "" {
			return synthSplit(cfg, split)
		}
		format = "coco"
		if IsVOCFolder(root) {
			format = "voc"
		}
	}
	if root == "" {
		return nil, fmt.Errorf("data: data.root is empty for format %q (set it, or pass a dataset path)", format)
	}
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("data: dataset %s: %w", root, err)
	}
	var ds *Dataset
	var ps Problems
	where := root
	switch format {
	case "voc":
		ds, ps = ReadVOC(root, VOCOptions{Classes: cfg.Data.Classes, Split: split, Images: opt.Images, MaxPixels: maxPx, Limits: LimitsOf(cfg)})
	case "coco":
		copt := COCOOptions{Classes: cfg.Data.Classes, Images: opt.Images, MaxPixels: maxPx, Limits: LimitsOf(cfg)}
		official := filepath.Join(root, "annotations", "instances_"+split+".json")
		perSplit := filepath.Join(root, split, COCOAnnotationFile)
		switch {
		case fileExists(official):
			where = official
			copt.ImageRoot = filepath.Join(root, split)
			ds, ps = ReadCOCO(official, copt)
		case fileExists(perSplit):
			where = filepath.Join(root, split)
			ds, ps = ReadCOCO(where, copt)
		case fileExists(filepath.Join(root, COCOAnnotationFile)):
			ds, ps = ReadCOCO(root, copt)
		default:
			return nil, fmt.Errorf("data: %s: no COCO annotations for split %q (looked for %s, %s and %s)", root, split,
				official, perSplit, filepath.Join(root, COCOAnnotationFile))
		}
	default:
		return nil, fmt.Errorf("data: format %q is not supported (want voc, coco or synth)", cfg.Data.Format)
	}
	if err := ps.Err(); err != nil && !opt.AllowErrors {
		return nil, fmt.Errorf("data: split %q of %s: %w", split, where, err)
	}
	if len(cfg.Data.Classes) > 0 && !slices.Equal(ds.Classes, cfg.Data.Classes) {
		return nil, fmt.Errorf("data: split %q of %s has classes %v, the configuration %v", split, where, ds.Classes, cfg.Data.Classes)
	}
	return &Split{Name: split, DS: ds, Source: DatasetSource{DS: ds, MaxPixels: maxPx}, Problems: ps, Where: where}, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// SynthOptionsOf converts data.synth and data.classes to pkg/dataset's options.
func SynthOptionsOf(cfg *config.Config) SynthOptions {
	s := cfg.Data.Synth
	return SynthOptions{
		Images: s.NumImages, Size: s.ImageSize, Seed: uint64(s.Seed),
		Classes:    slices.Clone(cfg.Data.Classes),
		MinObjects: s.MinObjects, MaxObjects: s.MaxObjects,
		MinObject: s.MinObject, MaxObject: s.MaxObject,
	}
}

// SynthCacheBytes bounds the pixels of an in-memory synthetic split kept
// after OpenSplit renders it: a split whose images fit is served from memory,
// a larger one is rendered again (deterministically) on every Load. Set it
// before OpenSplit (tests set 0 to exercise rendering on Load).
var SynthCacheBytes int64 = 512 << 20

// synthSplit renders one split of the synthetic set, on GOMAXPROCS
// goroutines, for its samples (and its images, kept when they fit
// SynthCacheBytes).
func synthSplit(cfg *config.Config, split string) (*Split, error) {
	if !slices.Contains(SynthSplits, split) {
		return nil, fmt.Errorf("data: synthetic split %q: want one of %s", split, strings.Join(SynthSplits, ", "))
	}
	opts := SynthOptionsOf(cfg)
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("data.synth: %w", err)
	}
	ds := &Dataset{Classes: slices.Clone(opts.Classes)}
	if len(ds.Classes) == 0 {
		ds.Classes = slices.Clone(DefaultSynthClasses)
	}
	var idx []int
	for i := 0; i < opts.Images; i++ {
		if SynthSplit(i) == split {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, fmt.Errorf("data: synthetic split %q has no images (data.synth.num_images = %d)", split, opts.Images)
	}
	size := opts.Size
	if size == 0 {
		size = 416 // SynthOptions' default
	}
	keep := int64(len(idx))*int64(3*size*size) <= SynthCacheBytes
	ds.Samples = make([]Sample, len(idx))
	var imgs []*Image
	if keep {
		imgs = make([]*Image, len(idx))
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1) - 1); k < len(idx); k = int(next.Add(1) - 1) {
				s, img := SynthImage(opts, idx[k])
				ds.Samples[k] = s
				if keep {
					imgs[k] = img
				}
			}
		}()
	}
	wg.Wait()
	return &Split{Name: split, DS: ds, Source: synthSource{opts: opts, idx: idx, ds: ds, imgs: imgs}, Where: "synthetic (in memory)"}, nil
}

// synthSource serves synthetic images from memory, or renders them on demand.
type synthSource struct {
	opts SynthOptions
	idx  []int // global image index of each sample
	ds   *Dataset
	imgs []*Image // rendered images (nil: render on Load); read-only
}

func (s synthSource) Len() int { return len(s.idx) }

func (s synthSource) Load(i int) (*Image, []Target, error) {
	if s.imgs != nil {
		return s.imgs[i], TargetsOf(s.ds.Samples[i].Objects), nil
	}
	_, img := SynthImage(s.opts, s.idx[i])
	return img, TargetsOf(s.ds.Samples[i].Objects), nil
}

// IsVOCFolder reports whether path is a folder holding VOC's Annotations/.
func IsVOCFolder(path string) bool {
	st, err := os.Stat(filepath.Join(path, VOCAnnotations))
	return err == nil && st.IsDir()
}

// DetectFormat says what the dataset at path is: "voc" for a folder with
// Annotations/ (VOC wins when both are there), "coco" for a .json file or a
// folder with annotations.json (this project's COCO folder layout). Anything
// else is an error naming path and asking for the format.
func DetectFormat(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		if strings.HasSuffix(strings.ToLower(path), ".json") {
			return "coco", nil
		}
		return "", fmt.Errorf("%s: not a folder or a .json file; give --format", path)
	}
	if IsVOCFolder(path) {
		return "voc", nil
	}
	if fileExists(filepath.Join(path, COCOAnnotationFile)) {
		return "coco", nil
	}
	return "", fmt.Errorf("%s: neither a VOC folder (no %s/) nor a COCO folder (no %s); give --format", path, VOCAnnotations, COCOAnnotationFile)
}

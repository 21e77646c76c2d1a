package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"yolodistill/pkg/cli"
	"yolodistill/pkg/dataset"
)

// synthCmd writes the built-in synthetic dataset: shapes of several classes
// on cluttered, textured backgrounds, many of them small, some overlapping,
// colours independent of the class. The same arguments always give the same
// bytes.
type synthCmd struct {
	Out        string `required:"" placeholder:"DIR" help:"output folder; must not exist or be empty."`
	Format     string `required:"" enum:"voc,coco" help:"voc (one folder, ImageSets/Main/{train,val,test}.txt) or coco (DIR/{train,val,test}/annotations.json + images/)."`
	Images     int    `required:"" placeholder:"N" help:"number of images (split 80/10/10 into train/val/test by index)."`
	Size       int    `default:"416" placeholder:"S" help:"image side in pixels (square images)."`
	Seed       uint64 `default:"1" placeholder:"K" help:"random seed; the output is a function of all arguments."`
	Classes    string `placeholder:"A,B,..." help:"shapes to use, in label order (default: circle,ring,hexagon,square,diamond,triangle,cross,star; also: x)."`
	Names      string `placeholder:"A,B,..." help:"class names written for the shapes of --classes, in order (default: the shape names): a stand-in for a dataset of your own classes."`
	MinObjects int    `default:"3" placeholder:"N" help:"objects per image, at least."`
	MaxObjects int    `default:"14" placeholder:"N" help:"objects per image, at most."`
	MinObject  int    `default:"0" placeholder:"PX" help:"smallest object side in pixels (0: max(8, size/40)); data.synth.min_object of a configuration."`
	MaxObject  int    `default:"0" placeholder:"PX" help:"largest object side in pixels (0: size/4; at most size/2); data.synth.max_object of a configuration."`
	Workers    int    `default:"0" placeholder:"N" help:"rendering goroutines (0: one per CPU); does not change the output."`
}

// Run writes the set into a temporary sibling of --out and renames it into
// place at the end, so --out is either complete or absent.
func (c *synthCmd) Run(e *env) error {
	opts := dataset.SynthOptions{
		Images: c.Images, Size: c.Size, Seed: c.Seed, Classes: splitClasses(c.Classes), Names: splitClasses(c.Names),
		MinObjects: c.MinObjects, MaxObjects: c.MaxObjects,
		MinObject: c.MinObject, MaxObject: c.MaxObject,
	}
	if c.Images <= 0 {
		return cli.UsageError{Err: fmt.Errorf("--images must be positive, got %d", c.Images)}
	}
	if c.MinObjects < 0 || c.MaxObjects < max(1, c.MinObjects) {
		return cli.UsageError{Err: fmt.Errorf("--min-objects %d / --max-objects %d is not a range", c.MinObjects, c.MaxObjects)}
	}
	if err := opts.Validate(); err != nil {
		return cli.UsageError{Err: err}
	}
	if err := dataset.CheckOutDir(c.Out); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(c.Out)), 0o755); err != nil {
		return err
	}
	var sum *dataset.SynthSummary
	err := dataset.WriteDir(c.Out, func(tmp string) error {
		var err error
		sum, err = dataset.WriteSynth(e.ctx, tmp, c.Format, opts, c.Workers)
		if err != nil && e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, sp := range dataset.SynthSplits {
		e.log.Printf("%s: %d images, %d boxes", sp, sum.Images[sp], sum.Objects[sp])
	}
	e.log.Printf("wrote %s (%s, %dx%d px, seed %d): classes %s", c.Out, c.Format, c.Size, c.Size, c.Seed, strings.Join(sum.Classes, ","))
	return nil
}

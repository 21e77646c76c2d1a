package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"yolodistill/pkg/anchor"
	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
)

// initCmd is `dataset init`: a teacher and a student configuration for a
// user's own VOC or COCO folder, so that every tool runs on it without -o.
//
//	dataset init DIR --preset NAME|FILE [--teacher NAME|FILE] [--out DIR] [--name NAME]
//	                 [--classes A,B] [--train-split S] [--eval-split S]
//	                 [--size N] [--iters N] [--batch N] [--force]
//
// The student configuration inherits the preset (`_base_`), the teacher
// configuration the preset's teacher (its distill.teacher, or --teacher);
// both then set what the folder decides: data.format, data.root, the splits,
// data.classes and model.num_classes, and model.anchors fitted by k-means on
// 1-IoU (anchor.Fit, as `dataset anchors --sizes`) to the training split's
// boxes at every training size of the preset (data.augment.multi_scale,
// pooled; or --size), the same anchors for both (the
// distillation losses over head outputs need them equal). The student's
// distill.teacher names the written teacher configuration. --size, --iters
// and --batch set the input size (data.augment.multi_scale and eval.size),
// train.max_iters (milestones at 80% and 90%, warmup at most a tenth) and
// train.batch_size of both, for a short first run.
//
// Splits: the training split is trainval when the folder has it, else train
// (VOC: ImageSets/Main/<split>.txt; COCO: annotations/instances_<split>.json
// or <split>/annotations.json; train2017 and train2014 too); the evaluation
// split is test, else val (val2017, val2014). Which were used, and why, is
// printed. Classes are discovered from the training split (VOC: sorted by
// name, or label_list.txt; COCO: by category id) unless --classes.
//
// Both files (NAME_teacher.yml and NAME_student.yml in --out; NAME defaults
// to the folder's name) are checked before anything is written: an existing
// file is refused without --force. Each is written atomically and validated
// as the tools load it. data.root is written as given (relative paths are
// relative to the directory the tools run in, as everywhere).
type initCmd struct {
	Path       string `arg:"" placeholder:"DIR" help:"your dataset: a VOC folder (Annotations/, JPEGImages/, ImageSets/Main/) or a COCO folder (annotations/instances_<split>.json and <split>/, or <split>/annotations.json and <split>/images/)."`
	Preset     string `required:"" placeholder:"NAME|FILE" help:"student preset to inherit: a name in pipelines/configs/ (run from the repository root; yolov3_mobilenet_v1, yolov3_mobilenet_v1_voc: PaddleDetection's full networks; bccd_student: CPU-sized) or a YAML file. Its distill.teacher is the teacher's preset."`
	Teacher    string `placeholder:"NAME|FILE" help:"teacher preset to inherit (default: the student preset's distill.teacher)."`
	Out        string `default:"." placeholder:"DIR" help:"folder the two configurations are written to (created)."`
	Name       string `placeholder:"NAME" help:"file names NAME_teacher.yml and NAME_student.yml (default: the dataset folder's name)."`
	Classes    string `placeholder:"A,B,..." help:"class list, in label order (default: discovered from the training split)."`
	TrainSplit string `name:"train-split" placeholder:"S" help:"training split (default: trainval if the folder has it, else train)."`
	EvalSplit  string `name:"eval-split" placeholder:"S" help:"evaluation split (default: test if the folder has it, else val)."`
	Size       int    `placeholder:"N" help:"input size for training and evaluation, a multiple of 32 (default: the preset's data.augment.multi_scale and eval.size)."`
	Iters      int    `placeholder:"N" help:"train.max_iters of both, milestones at 80% and 90% (default: the presets')."`
	Batch      int    `placeholder:"N" help:"train.batch_size of both (default: the presets')."`
	Force      bool   `help:"overwrite existing configuration files."`
	limitFlags
}

// Split candidates, in order of preference.
var (
	trainSplits = []string{"trainval", "train", "train2017", "train2014"}
	evalSplits  = []string{"test", "val", "val2017", "val2014"}
)

func (c *initCmd) Run(e *env) error {
	if c.Size != 0 && (c.Size < 32 || c.Size%32 != 0) {
		return cli.Usagef("--size %d: want a multiple of 32", c.Size)
	}
	if c.Iters < 0 || c.Batch < 0 {
		return cli.Usagef("--iters %d, --batch %d: want 1 or more", c.Iters, c.Batch)
	}
	if _, err := c.limits(); err != nil {
		return err
	}
	st, err := os.Stat(c.Path)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a folder: give the dataset's folder (VOC: Annotations/, JPEGImages/, ImageSets/Main/; COCO: annotations/ and the image folders)", c.Path)
	}
	studentPreset, err := presetPath(c.Preset)
	if err != nil {
		return cli.UsageError{Err: fmt.Errorf("--preset: %w", err)}
	}
	sp, err := config.Load(studentPreset, nil)
	if err != nil {
		return err
	}
	teacherPreset := sp.TeacherPath()
	if c.Teacher != "" {
		if teacherPreset, err = presetPath(c.Teacher); err != nil {
			return cli.UsageError{Err: fmt.Errorf("--teacher: %w", err)}
		}
	} else if teacherPreset == "" {
		return cli.Usagef("--preset %s names no teacher (distill.teacher is empty): give --teacher PRESET", c.Preset)
	}
	tp, err := config.Load(teacherPreset, nil)
	if err != nil {
		return err
	}

	// The folder: format, splits, classes, boxes.
	format := "coco"
	if dataset.IsVOCFolder(c.Path) {
		format = "voc"
	}
	train, why, err := pickSplit(c.Path, format, c.TrainSplit, trainSplits, "")
	if err != nil {
		return err
	}
	e.log.Printf("training split: %s (%s)", train, why)
	eval, ewhy, err := pickSplit(c.Path, format, c.EvalSplit, evalSplits, train)
	if err != nil && c.EvalSplit != "" {
		return err
	}
	if err != nil {
		e.log.Printf("warning: no evaluation split (%v): detect-eval needs one; the runs will not evaluate (--eval-split S names one)", err)
		eval = ""
	} else {
		e.log.Printf("evaluation split: %s (%s)", eval, ewhy)
		if train == "trainval" && eval == "val" {
			e.log.Printf("warning: by VOC's convention val is part of trainval: scores on it will be optimistic")
		}
	}
	probe := config.Defaults()
	probe.Data.Format, probe.Data.Root, probe.Data.Classes = format, c.Path, splitClasses(c.Classes)
	probe.Data.MaxObjects, probe.Data.MaxAnnotationMB = c.MaxObjects, c.MaxAnnotationMB
	split, err := dataset.OpenSplit(&probe, train, dataset.SplitOptions{AllowErrors: true, Images: dataset.ImageHeader})
	if err != nil {
		return err
	}
	if n := split.Problems.Count(dataset.Error); n > 0 {
		e.log.Printf("warning: the training split has %d errors (their images are left out) and %d warnings: `dataset check %s` lists them",
			n, split.Problems.Count(dataset.Warning), c.Path)
	}
	ds := split.DS
	if len(ds.Classes) == 0 || len(ds.Samples) == 0 {
		return fmt.Errorf("%s: split %q has no usable images or classes (%d images, classes %q)", c.Path, train, len(ds.Samples), ds.Classes)
	}
	e.log.Printf("classes (%d, label order): %s", len(ds.Classes), strings.Join(ds.Classes, ","))

	// Sizes, anchors.
	// The anchors are fixed pixels of the network input at every training
	// size: fitted to the boxes as they appear at each of the preset's
	// training sizes (data.augment.multi_scale), pooled, or at --size.
	sizes := sp.Data.Augment.MultiScale
	if c.Size != 0 {
		sizes = []int{c.Size}
	}
	if len(sizes) == 0 {
		sizes = []int{sp.Eval.Size}
	}
	var boxes []anchor.Anchor
	for _, in := range sizes {
		boxes = append(boxes, dataset.BoxSizes(ds, in)...)
	}
	at, flag := fmt.Sprintf("%dx%d", sizes[0], sizes[0]), fmt.Sprintf("--size %d", sizes[0])
	if len(sizes) > 1 {
		list := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(sizes)), ","), "[]")
		at, flag = "input sizes "+list+" (data.augment.multi_scale)", "--sizes "+list
	}
	k := len(sp.Model.Anchors)
	if n := len(boxes) / len(sizes); n < k {
		return fmt.Errorf("%s: split %q has %d usable boxes, fewer than the %d anchors to fit", c.Path, train, n, k)
	}
	fit, err := anchor.Fit(boxes, anchor.FitOptions{K: k})
	if err != nil {
		return fmt.Errorf("%s: %w", c.Path, err)
	}
	anchors := anchor.Round(fit.Anchors, 1)
	presetIoU := anchor.MeanBestIoU(boxes, sp.Model.Anchors)
	e.log.Printf("anchors: k-means on 1-IoU of %d boxes of %d images at %s: mean best IoU %.3f (the preset's anchors: %.3f)",
		len(boxes)/len(sizes), len(ds.Samples), at, anchor.MeanBestIoU(boxes, anchors), presetIoU)

	// The files.
	name := c.Name
	if name == "" {
		name = filepath.Base(filepath.Clean(c.Path))
		if abs, err := filepath.Abs(c.Path); err == nil {
			name = filepath.Base(abs)
		}
	}
	tFile := filepath.Join(c.Out, name+"_teacher.yml")
	sFile := filepath.Join(c.Out, name+"_student.yml")
	for _, f := range []string{tFile, sFile} {
		if _, err := os.Stat(f); err == nil && !c.Force {
			return fmt.Errorf("%s exists: give --force to overwrite it, or --out/--name for other files", f)
		}
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return err
	}
	for _, f := range []string{tFile, sFile} {
		if err := atomicfile.Check(f); err != nil {
			return err
		}
	}
	gen := generated{
		cmd: c.command(), path: c.Path, format: format, train: train, eval: eval,
		classes: ds.Classes, anchors: anchors, size: c.Size, iters: c.Iters, batch: c.Batch,
		why: fmt.Sprintf("k-means on 1-IoU of the %d boxes of split %s at %s (dataset anchors %s %s): mean best IoU %.3f, the preset's %.3f",
			len(boxes)/len(sizes), train, at, c.Path, flag, anchor.MeanBestIoU(boxes, anchors), presetIoU),
	}
	tText, err := gen.text(tFile, teacherPreset, tp, "")
	if err != nil {
		return err
	}
	sText, err := gen.text(sFile, studentPreset, sp, filepath.Base(tFile))
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(tFile, tText); err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(sFile, sText); err != nil {
		return err
	}
	tc, err := config.Load(tFile, nil)
	if err != nil {
		return fmt.Errorf("the written teacher configuration does not load: %w", err)
	}
	sc, err := config.Load(sFile, nil)
	if err != nil {
		return fmt.Errorf("the written student configuration does not load: %w", err)
	}
	e.log.Printf("wrote %s (teacher: %s, %s x%g, %d iterations) and %s (student: %s, %s x%g, %d iterations, distill.loss %s)",
		tFile, filepath.Base(teacherPreset), tc.Model.Backbone, tc.Model.BackboneWidth, tc.Train.MaxIters,
		sFile, filepath.Base(studentPreset), sc.Model.Backbone, sc.Model.BackboneWidth, sc.Train.MaxIters, sc.Distill.Loss)
	e.log.Printf("next: detect-train -c %s --out RUNS/teacher; teacher-dump --weights RUNS/teacher/model_final.ckpt --student-config %s --out - | student-train -c %s --soft-targets - --out RUNS/student",
		tFile, sFile, sFile)
	return nil
}

// command is the init command line, for the files' first comment.
func (c *initCmd) command() string {
	args := []string{"dataset", "init", c.Path, "--preset", c.Preset}
	for _, f := range []struct{ flag, v string }{{"--teacher", c.Teacher}, {"--classes", c.Classes}, {"--train-split", c.TrainSplit}, {"--eval-split", c.EvalSplit}} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	for _, f := range []struct {
		flag string
		v    int
	}{{"--size", c.Size}, {"--iters", c.Iters}, {"--batch", c.Batch}} {
		if f.v != 0 {
			args = append(args, f.flag, strconv.Itoa(f.v))
		}
	}
	return strings.Join(args, " ")
}

// presetPath resolves a preset: a YAML file path, or NAME for
// pipelines/configs/NAME.yml under the working directory.
func presetPath(p string) (string, error) {
	if strings.ContainsRune(p, filepath.Separator) || strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml") {
		if _, err := os.Stat(p); err != nil {
			return "", err
		}
		return p, nil
	}
	dir := filepath.Join("pipelines", "configs")
	f := filepath.Join(dir, p+".yml")
	if _, err := os.Stat(f); err == nil {
		return f, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("preset %q: no %s here (run from the repository root, or give the preset's file path)", p, dir)
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".yml"); ok {
			names = append(names, n)
		}
	}
	return "", fmt.Errorf("preset %q: no %s; the presets: %s", p, f, strings.Join(names, ", "))
}

// splitFile is where a split's list or annotations live, "" when absent.
func splitFile(root, format, split string) string {
	var cands []string
	if format == "voc" {
		cands = []string{filepath.Join(root, dataset.VOCSets, split+".txt")}
	} else {
		cands = []string{filepath.Join(root, "annotations", "instances_"+split+".json"), filepath.Join(root, split, dataset.COCOAnnotationFile)}
	}
	for _, f := range cands {
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
			return f
		}
	}
	return ""
}

// pickSplit returns the split given (which must exist), or the first of
// cands the folder has other than not, and why it was chosen.
func pickSplit(root, format, given string, cands []string, not string) (string, string, error) {
	if given != "" {
		f := splitFile(root, format, given)
		if f == "" {
			return "", "", fmt.Errorf("%s: no split %q (%s)", root, given, splitWhere(root, format, given))
		}
		return given, f + ", as given", nil
	}
	var missing []string
	for _, s := range cands {
		if s == not {
			continue
		}
		if f := splitFile(root, format, s); f != "" {
			why := f
			if len(missing) > 0 {
				why += "; there is no " + strings.Join(missing, ", no ")
			}
			return s, why, nil
		}
		missing = append(missing, s)
	}
	return "", "", errors.New(root + ": none of the splits " + strings.Join(cands, ", ") + " (" + splitWhere(root, format, "SPLIT") + "); name one")
}

func splitWhere(root, format, split string) string {
	if format == "voc" {
		return filepath.Join(root, dataset.VOCSets, split+".txt")
	}
	return filepath.Join(root, "annotations", "instances_"+split+".json") + " or " + filepath.Join(root, split, dataset.COCOAnnotationFile)
}

// generated is what init writes into both configurations.
type generated struct {
	cmd, path, format, train, eval string
	classes                        []string
	anchors                        []anchor.Anchor
	size, iters, batch             int
	why                            string
}

// text is the configuration file at path inheriting base (loaded as
// preset); teacher, when not "", is the student's distill.teacher. The text
// is validated as the tools will load it.
func (g generated) text(path, base string, preset *config.Config, teacher string) ([]byte, error) {
	rel, err := relPath(filepath.Dir(path), base)
	if err != nil {
		return nil, err
	}
	role := "teacher"
	if teacher != "" {
		role = "student"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# The %s for %s, written by `%s`.\n", role, g.path, g.cmd)
	fmt.Fprintf(&b, "# Everything not set here comes from %s (_base_). Anchors: %s.\n", base, g.why)
	fmt.Fprintf(&b, "# data.root is relative to the directory the tools run in.\n")
	fmt.Fprintf(&b, "_base_: %s\n", yamlString(rel))
	fmt.Fprintf(&b, "model:\n  num_classes: %d\n  anchors: %s\n", len(g.classes), flowPairs(g.anchors))
	fmt.Fprintf(&b, "data:\n  format: %s\n  root: %s\n  train_split: %s\n  eval_split: %s\n  classes: [%s]\n",
		g.format, yamlString(g.path), yamlString(g.train), yamlString(g.eval), joinQuoted(g.classes))
	if g.size != 0 {
		fmt.Fprintf(&b, "  augment:\n    multi_scale: [%d]\n", g.size)
	}
	if g.iters != 0 || g.batch != 0 {
		b.WriteString("train:\n")
		if g.iters != 0 {
			n := g.iters
			m1, m2 := max(1, n*8/10), max(1, n*9/10)
			if m2 <= m1 {
				m2 = m1 + 1
			}
			fmt.Fprintf(&b, "  max_iters: %d\n  milestones: [%d, %d]\n  warmup_steps: %d\n", n, m1, m2, min(preset.Train.WarmupSteps, n/10))
			if preset.Train.SnapshotIter > n {
				fmt.Fprintf(&b, "  snapshot_iter: %d\n", n)
			}
		}
		if g.batch != 0 {
			fmt.Fprintf(&b, "  batch_size: %d\n", g.batch)
		}
	}
	if g.size != 0 {
		fmt.Fprintf(&b, "eval:\n  size: %d\n", g.size)
	}
	if teacher != "" {
		fmt.Fprintf(&b, "distill:\n  teacher: %s\n", yamlString(teacher))
	}
	text := []byte(b.String())
	if _, err := config.Parse(text, path, nil); err != nil {
		return nil, fmt.Errorf("the %s configuration for %s would not load (%w); nothing written", role, path, err)
	}
	return text, nil
}

// relPath is target relative to dir when the two share a folder below the
// root, else target made absolute.
func relPath(dir, target string) (string, error) {
	ad, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	at, err := filepath.Abs(target)
	if err != nil {
		return "", err
	}
	// Relative when the two share a folder below the file system's root.
	first := func(p string) string {
		return strings.SplitN(strings.TrimPrefix(p, string(filepath.Separator)), string(filepath.Separator), 2)[0]
	}
	if r, err := filepath.Rel(ad, at); err == nil && first(ad) == first(at) {
		return r, nil
	}
	return at, nil
}

func yamlString(s string) string { return strconv.Quote(s) }

func joinQuoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(slices.Clip(q), ", ")
}

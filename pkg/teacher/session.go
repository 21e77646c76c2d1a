package teacher

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/config"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/distill"
	"yolodistill/pkg/softtarget"
	"yolodistill/pkg/train"
	"yolodistill/pkg/yolo"
)

// Options configure a distillation Session (student-train's flags).
type Options struct {
	// Student is the student's configuration (validated).
	Student *config.Config
	// TeacherConfig is the teacher configuration's path; "" means the
	// student's distill.teacher (and none when that is empty too).
	TeacherConfig string
	// Weights are the teacher's weights (a path or an http(s) URL) for
	// online distillation; "" means offline, from Inputs.
	Weights string
	// Inputs are the soft-target files of offline distillation, in order;
	// "-" is Stdin (at most once).
	Inputs []string
	Stdin  io.Reader
	// CacheDir holds downloaded weights (checkpoint.DefaultCacheDir when "").
	CacheDir string
	// Log receives messages (one line each, no prefix); nil discards them.
	Log func(format string, args ...any)
}

// Session is the distillation side of one student training run: the recipe
// applied to the student (distill.Student) and its teacher, online or
// offline (with the Replay batch source over the soft-target inputs). Apply
// puts it into pkg/train's loop.
type Session struct {
	Student *distill.Student
	// Online or Offline is the teacher; the other is nil.
	Online  *Online
	Offline *Offline

	cfg     *config.Config
	ins     []input
	seq     *sequence
	split   *dataset.Split
	opened  bool
	logf    func(format string, args ...any)
	runaway *distill.Runaway
	Summary string // one line saying what the session distils from
	// Recipe describes the distillation for checkpoints (train.Options.Recipe):
	// loss, weight, pairs, and online or offline.
	Recipe string
}

// Setup makes the recipe of the student configuration, checks the teacher
// (the soft targets' metadata, or the teacher configuration and weights)
// against the student, and opens the soft-target inputs. Close it after
// training.
func Setup(ctx context.Context, opt Options) (s *Session, err error) {
	cfg := opt.Student
	s = &Session{cfg: cfg, logf: opt.Log}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	rec, err := distill.NewRecipe(cfg.Distill, len(cfg.Model.AnchorMasks), cfg.Model.NumClasses, 0)
	if err != nil {
		return s, fmt.Errorf("%s: %w", configName(cfg), err)
	}
	if rec.Kind == "none" {
		rec.Close()
		return s, fmt.Errorf("%s: distill.loss is none: nothing to distil (set distill.loss, e.g. -o distill.loss=l2, or use detect-train)", configName(cfg))
	}
	if rec.Has("fine_grained") && !cfg.Loss.UseFineGrainedLoss {
		// PaddleDetection's distill.py: split_distill only with
		// use_fine_grained_loss (its COCO command passes -o
		// use_fine_grained_loss=true); the student's own loss is then the
		// fine-grained YOLOv3 loss.
		rec.Close()
		return s, fmt.Errorf("%s: distill.loss fine_grained trains the student with the fine-grained YOLOv3 loss, as PaddleDetection's distill.py requires: set loss.use_fine_grained_loss: true (or -o loss.use_fine_grained_loss=true)", configName(cfg))
	}
	teacherPath := opt.TeacherConfig
	if teacherPath == "" {
		teacherPath = cfg.TeacherPath()
	}
	var tc *config.Config
	var tspec *yolo.Spec
	if teacherPath != "" {
		if tc, err = cfg.LoadTeacher(teacherPath, nil); err != nil {
			rec.Close()
			if opt.TeacherConfig == "" && !filepath.IsAbs(cfg.Distill.Teacher) && cfg.Stored() {
				return s, fmt.Errorf("teacher configuration: %w (distill.teacher %q of %s, resolved against %s: give the student's configuration with -c, or -o distill.teacher=PATH)",
					err, cfg.Distill.Teacher, cfg.Path, cfg.BaseDir())
			}
			return s, fmt.Errorf("teacher configuration: %w", err)
		}
		if tspec, err = yolo.FromModelConfig(tc.Model); err != nil {
			rec.Close()
			return s, fmt.Errorf("teacher %s: %w", teacherPath, err)
		}
	}
	if tspec != nil {
		// Pairs whose shapes cannot match fail here, not at the first iteration.
		sspec, err := yolo.FromModelConfig(cfg.Model)
		if err != nil {
			rec.Close()
			return s, fmt.Errorf("%s: %w", configName(cfg), err)
		}
		if err := rec.CheckShapes(sspec, tspec, cfg.Data.Augment.MultiScale); err != nil {
			rec.Close()
			var se *distill.ShapeError
			if errors.As(err, &se) {
				return s, cfg.Errorf(se.Key, "%s", se.Msg) // blamed on -o when an override set it
			}
			return s, fmt.Errorf("%s: %w", configName(cfg), err)
		}
	}
	want := Want(cfg, rec, tc)
	s.Recipe = fmt.Sprintf("%s distillation, %s", rec.Kind, weightsText(cfg.Distill))
	if n := len(cfg.Distill.Pairs); n > 0 {
		s.Recipe += fmt.Sprintf(", %d pairs", n)
	}
	if opt.Weights != "" {
		s.Recipe += ", online"
	} else {
		s.Recipe += ", offline"
	}
	if opt.Weights != "" {
		s.Student = distill.NewStudent(rec, nil, cfg.Model.AnchorMasks)
		if tc == nil {
			return s, errors.New("online mode needs the teacher configuration: -t TEACHER (or distill.teacher in the student configuration)")
		}
		// The teacher runs beside the student on every batch: its graphs
		// must fit memory too.
		if err := detector.CheckSizes(tspec, cfg, "data.augment.multi_scale", cfg.Data.Augment.MultiScale, cfg.Train.BatchSize, false); err != nil {
			return s, fmt.Errorf("teacher %s: %w", teacherPath, err)
		}
		if err := checkOnline(cfg, tc, teacherPath, want); err != nil {
			return s, err
		}
		if s.Online, err = NewOnline(ctx, tc, teacherPath, opt.Weights, opt.CacheDir, rec, want, s.logf); err != nil {
			return s, err
		}
		s.Student.Teacher = s.Online
		s.Summary = fmt.Sprintf("online distillation (%s) from teacher %s", rec.Kind, teacherPath)
		return s, nil
	}
	s.Offline = NewOffline(rec, tspec)
	s.Student = distill.NewStudent(rec, s.Offline, cfg.Model.AnchorMasks)
	if teacherPath == "" {
		s.logf("warning: no teacher configuration (-t or distill.teacher): the soft targets' teacher is not checked")
	}
	// The views are rebuilt with this configuration's augmentation: the
	// settings the records do not carry must be the dump's.
	aug := augment.FromConfig(cfg)
	want.Replay = aug.ReplaySettings(false)
	for _, path := range opt.Inputs {
		var r *softtarget.Reader
		if path == "-" {
			r, err = softtarget.NewReader(bufio.NewReaderSize(opt.Stdin, 1<<20), "-")
			if errors.Is(err, softtarget.ErrEmpty) {
				return s, errors.New("no soft targets arrived on stdin (-): the command writing into the pipe (teacher-dump) failed or wrote nothing; see its error above")
			}
		} else {
			r, err = softtarget.Open(path)
		}
		if err != nil {
			return s, err
		}
		s.ins = append(s.ins, input{name: path, r: r})
		if tc != nil && r.Meta().TeacherConfigHash != want.TeacherConfigHash {
			return s, dumpMismatch(path, r.Meta(), cfg, tc, teacherPath, opt.TeacherConfig != "")
		}
		if err := r.CheckCompatible(want); err != nil {
			return s, err
		}
		if !r.Meta().HasPixelHashes() {
			s.logf("warning: %s was written by an older teacher-dump (soft-target schema version %d) and carries no pixel hashes: "+
				"the views rebuilt here cannot be verified to be the ones the teacher saw; re-dump it with this teacher-dump to have them checked",
				path, r.Meta().Version)
		}
		if r.Meta().Replay == nil {
			s.logf("warning: %s predates the augmentation-settings check (no %s in its metadata): "+
				"cannot verify that it was dumped with this configuration's data.augment mean, std and expand fill; re-dump it with this teacher-dump to have them checked",
				path, softtarget.KeyReplay)
		}
		if r.Meta().Encoding.Kind == softtarget.Sparse {
			if err := rec.CheckSparse(); err != nil {
				return s, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	if s.split, err = dataset.OpenSplit(cfg, cfg.Data.TrainSplit, dataset.SplitOptions{}); err != nil {
		return s, err
	}
	if sum := s.split.Problems.Summary(); sum != "" {
		s.logf("warning: training split %q: %s", cfg.Data.TrainSplit, sum)
	}
	s.seq = newSequence(s.ins)
	if s.seq.cycle {
		batches := s.seq.total / int64(cfg.Train.BatchSize)
		s.Summary = fmt.Sprintf("offline distillation (%s): %d views in %d file(s), about %d batches per pass, %d iterations",
			rec.Kind, s.seq.total, len(s.ins), batches, cfg.Train.MaxIters)
	} else {
		s.Summary = fmt.Sprintf("offline distillation (%s) from %d input(s) including a stream, %d iterations", rec.Kind, len(s.ins), cfg.Train.MaxIters)
	}
	return s, nil
}

// watch is the loop's Watch hook: the runaway-distillation warning
// (distill.warn_ratio). The detection loss is the step's total less the
// recipe's terms.
func (s *Session) watch(rec train.Record) string {
	if s.runaway == nil {
		return ""
	}
	dis := 0.0
	for _, t := range s.Student.Recipe.Terms {
		dis += rec.Parts[t.Name]
	}
	return s.runaway.Observe(rec.Iter, rec.Loss-dis, dis)
}

// Apply sets o's hooks (the adapters before a checkpoint is loaded, the
// losses on every training graph, the teacher's tensors before every step,
// the runaway-distillation warning after it)
// and, offline, its batch source: the Replay of the soft targets.
func (s *Session) Apply(o *train.Options) {
	o.Hooks.Init = s.Student.Init
	o.Hooks.Attach = s.Student.Attach
	s.runaway = distill.NewRunaway(s.Student.Recipe, s.cfg.Distill.WarnRatio, s.cfg.Distill.WarnIters, s.cfg.Distill.Weight)
	o.Hooks.Watch = s.watch
	if s.Online != nil {
		o.Hooks.Prepare = func(ctx context.Context, it int, b *augment.Batch, net *detector.Net) error {
			if err := s.Online.Prepare(b); err != nil {
				return err
			}
			return s.Student.Prepare()
		}
		return
	}
	o.Open = s.open
	o.Hooks.Prepare = func(ctx context.Context, it int, b *augment.Batch, net *detector.Net) error {
		if err := s.Offline.Prepare(); err != nil {
			return err
		}
		return s.Student.Prepare()
	}
}

// open is the offline train.OpenSource: the Replay at a saved state.
func (s *Session) open(ctx context.Context, cfg *config.Config, state []byte, shard augment.Shard) (train.Source, error) {
	if s.opened {
		return nil, errors.New("soft targets: the source can be opened once per run")
	}
	s.opened = true
	var st softState
	if len(state) > 0 {
		if err := json.Unmarshal(state, &st); err != nil {
			return nil, fmt.Errorf("soft-target position %q in the checkpoint: not a student-train position", state)
		}
	}
	need := int64(cfg.Train.MaxIters) - st.Batches
	if need <= 0 {
		return nil, fmt.Errorf("soft-target position %q: %d batches done, train.max_iters is %d", state, st.Batches, cfg.Train.MaxIters)
	}
	spec, err := yolo.FromModelConfig(cfg.Model)
	if err != nil {
		return nil, err
	}
	var held float64 // the largest graph checked so far: later ones reuse its buffers
	verify := replayChecks{
		fits: func(n, size int) error {
			if err := detector.CheckMemory(spec, n, size, size, true, int64(held)); err != nil {
				return err
			}
			if need, err := detector.MemoryNeed(spec, n, size, size, true); err == nil {
				held = max(held, need)
			}
			return nil
		},
		here:       DataSettings(cfg, ""),
		multiScale: cfg.Data.Augment.MultiScale,
		logf:       s.logf,
	}
	for _, in := range s.ins {
		if d := in.r.Meta().Data; d != nil && verify.dumped == nil {
			verify.dumped = d
		}
		if in.r.Meta().Replay == nil {
			verify.replayUnchecked = true
		}
	}
	return openReplay(ctx, cfg, state, s.seq, s.split, s.Offline, need, shard, verify)
}

// Err is the first error of a distillation loss (losses cannot fail inside
// a graph step: training sees a NaN loss; this says why).
func (s *Session) Err() error {
	if s.Student == nil {
		return nil
	}
	return s.Student.Err()
}

// Close closes the losses and the soft-target inputs.
func (s *Session) Close() {
	if s.Student != nil {
		s.Student.Recipe.Close()
	}
	for _, in := range s.ins {
		in.r.Close()
	}
}

func configName(cfg *config.Config) string {
	if cfg.Path != "" {
		return cfg.Path
	}
	return "configuration"
}

// dumpMismatch explains soft targets from another teacher than the
// student's: both sides, the keys that differ (when the file records its
// teacher's model text) and the command-line fix.
func dumpMismatch(path string, m softtarget.Meta, st, tc *config.Config, teacherPath string, fromFlag bool) error {
	where := "distill.teacher of " + configName(st)
	if fromFlag {
		where = "-t"
	}
	mine := teacherPath + " (" + where
	if o := st.Distill.TeacherOverrides; len(o) > 0 {
		mine += ", with teacher overrides " + strings.Join(quoteArgs(o), " ")
	}
	mine += fmt.Sprintf("; model hash %.12s)", tc.ModelHash())
	if m.TeacherModel == "" {
		return fmt.Errorf("soft targets %s were dumped from a teacher with model hash %.12s, but this student's teacher is %s: another teacher, or the same one with other settings. "+
			"If teacher-dump ran the student's teacher with -o overrides, give student-train the same ones: --teacher-override KEY=VALUE (for each teacher-dump -o); "+
			"otherwise dump the student's teacher: teacher-dump -c %s --weights ITS_WEIGHTS --student-config %s",
			path, m.TeacherConfigHash, mine, shellArg(teacherPath), shellArg(configName(st)))
	}
	diffs := config.DiffModelText(m.TeacherModel, tc.ModelText())
	return fmt.Errorf("soft targets %s were dumped from a teacher with model hash %.12s, but this student's teacher is %s: %s. "+
		"If the dump's teacher is the student's teacher with other settings (teacher-dump -o), give student-train the same: %s; "+
		"otherwise dump the student's teacher: teacher-dump -c %s --weights ITS_WEIGHTS --student-config %s",
		path, m.TeacherConfigHash, mine, diffText(diffs, "in the dump", "here"),
		overrideArgs("--teacher-override", diffs), shellArg(teacherPath), shellArg(configName(st)))
}

// checkOnline checks, before the teacher's weights are loaded, that the
// teacher of online distillation fits the student: the same classes and,
// for losses over head outputs, the same anchors and masks. The error
// speaks of the teacher and names the overrides that would make it fit.
func checkOnline(st, tc *config.Config, teacherPath string, want softtarget.Meta) error {
	keys := map[string]bool{"data.classes": true, "model.num_classes": true}
	if want.Anchors != nil {
		keys["model.anchors"], keys["model.anchor_masks"] = true, true
	}
	var diffs []config.ModelDiff
	for _, d := range config.DiffModelText(st.ModelText(), tc.ModelText()) {
		if keys[d.Key] {
			diffs = append(diffs, d)
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("the teacher %s does not fit the student %s: %s. Give the teacher the student's settings (student-train %s), or use a teacher trained for these classes and anchors",
		teacherPath, configName(st), diffText(diffs, "for the student", "for the teacher"), overrideArgs("--teacher-override", diffs))
}

// weightsText gives the distillation weights for the recipe line: "weight
// 100", or for a combined loss "weights l2 100, fine_grained 1000" (the
// kinds' defaults where distill.weights is empty).
func weightsText(dc config.DistillConfig) string {
	parts := dc.LossParts()
	if len(parts) == 1 {
		return fmt.Sprintf("weight %g", dc.Weight)
	}
	ws := make([]string, len(parts))
	for i, p := range parts {
		w := distill.DefaultWeight(p, false)
		if len(dc.Weights) == len(parts) {
			w = dc.Weights[i]
		}
		ws[i] = fmt.Sprintf("%s %g", p, w)
	}
	return "weights " + strings.Join(ws, ", ")
}

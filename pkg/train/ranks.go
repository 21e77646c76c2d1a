package train

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/dataset"
	"yolodistill/pkg/dist"
)

// Data-parallel training (Options.Dist with more than one rank): every rank
// runs Run with the same options. The ranks meet at agreement points, where
// each tells all the others its status (going on, stopping on a signal, or
// failing with a message) and the training images it skipped; every rank
// then takes the same decision, so that all of them stop after the same
// iteration and rank 0, the only one that writes, can save a checkpoint
// first. Per iteration: after the batch (the loader's shard: augment.Shard),
// after preparing the step, and after it (the losses, summed over the ranks
// with a flag for failures), then the gradients summed in rank order.

// Checkpoint Meta keys of data-parallel runs.
const (
	worldSizeMeta   = "world_size"   // ranks of the run that wrote the checkpoint
	globalBatchMeta = "global_batch" // images per iteration over all ranks (train.batch_size)
)

// Status codes at an agreement point, in increasing severity.
const (
	codeOK   = 0
	codeStop = 1 // interrupted (a signal): save and stop
	codeErr  = 2 // failed: save and stop with the message
)

// status is one rank's report at an agreement point.
type status struct {
	Code   int            `json:"code,omitempty"`
	Err    string         `json:"err,omitempty"`
	Skips  []skippedImage `json:"skips,omitempty"`
	Config string         `json:"config,omitempty"` // setup only: hash of the configuration
	Host   string         `json:"host,omitempty"`   // setup only
	Procs  int            `json:"procs,omitempty"`  // setup only: GOMAXPROCS
}

// agreement is what every rank learnt at an agreement point.
type agreement struct {
	code  int            // the most severe code of any rank
	rank  int            // the lowest rank with that code
	msg   string         // its message
	skips []dataset.Skip // every rank's skipped images, in rank order
	all   []status
}

// statusOf is this rank's status after err (nil: going on): a context error
// while ctx is done is a stop, anything else a failure.
func statusOf(ctx context.Context, err error) status {
	switch {
	case err == nil:
		return status{}
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return status{Code: codeStop, Err: err.Error()}
	default:
		return status{Code: codeErr, Err: err.Error()}
	}
}

func toSkipped(skips []dataset.Skip) []skippedImage {
	out := make([]skippedImage, len(skips))
	for i, s := range skips {
		out[i] = skippedImage{Index: s.Index, Error: s.Err.Error()}
	}
	return out
}

// agree exchanges st with every rank (what names the point for the
// watchdog). With a single rank it returns st at once.
func (t *trainer) agree(what string, st status) (agreement, error) {
	if t.size == 1 {
		a := agreement{code: st.Code, msg: st.Err, all: []status{st}}
		for _, s := range st.Skips {
			a.skips = append(a.skips, dataset.Skip{Index: s.Index, Err: errors.New(s.Error)})
		}
		return a, nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return agreement{}, err
	}
	raw, err := t.comm.Allgather(what, b)
	if err != nil {
		return agreement{}, err
	}
	a := agreement{all: make([]status, len(raw))}
	for r, b := range raw {
		s := &a.all[r]
		if err := json.Unmarshal(b, s); err != nil {
			return agreement{}, fmt.Errorf("rank %d's status at %s: %w", r, what, err)
		}
		if s.Code > a.code {
			a.code, a.rank, a.msg = s.Code, r, s.Err
		}
		for _, k := range s.Skips {
			a.skips = append(a.skips, dataset.Skip{Index: k.Index, Err: errors.New(k.Error)})
		}
	}
	return a, nil
}

// stopErr is the error every rank returns after an agreement that did not
// end OK: on the rank that reported it, its own error (local), elsewhere its
// message; prefixed with the rank when there are several. A stop wraps
// context.Canceled (the tools exit 130). Marked dist.Agreed.
func (t *trainer) stopErr(a agreement, local error) error {
	var err error
	switch {
	case t.size == 1:
		err = local
	case a.rank == t.rank && local != nil:
		err = fmt.Errorf("rank %d of %d: %w", a.rank, t.size, local)
	case a.code == codeStop:
		err = fmt.Errorf("rank %d of %d: %s: %w", a.rank, t.size, a.msg, context.Canceled)
	default:
		err = fmt.Errorf("rank %d of %d: %s", a.rank, t.size, a.msg)
	}
	if t.size == 1 {
		return err
	}
	return dist.Agreed(err)
}

// shard is this rank's part of every batch.
func (t *trainer) shard() augment.Shard { return augment.Shard{Rank: t.rank, Size: t.size} }

// startRanks is Run's start with several ranks: every rank builds the
// detector, rank 0 alone restores (the resume checkpoint or pretrained
// weights) and writes the run folder, every rank opens the evaluation split;
// the ranks agree that all went well and run one configuration; then rank 0
// broadcasts the weights, the BatchNorm statistics, the solver's state and
// the run's state. It returns the completed iterations and the data-order
// position.
func (t *trainer) startRanks(ctx context.Context, pre error) (int, []byte, error) {
	cfg, opt := t.cfg, t.opt
	var start int
	var state []byte
	err := pre
	if err == nil {
		err = t.setup(ctx)
	}
	if err == nil && cfg.Train.BatchSize < t.size {
		err = fmt.Errorf("train.batch_size %d cannot be split over %d ranks (each needs one image at least)", cfg.Train.BatchSize, t.size)
	}
	if err == nil && t.rank == 0 {
		if start, state, err = t.restore(ctx); err == nil {
			t.rf.wrote = true
			if err = os.MkdirAll(opt.OutDir, 0o755); err != nil {
				err = fmt.Errorf("run folder: %w", err)
			} else {
				err = writeConfig(filepath.Join(opt.OutDir, ConfigFile), cfg)
			}
		}
	}
	if err == nil && cfg.Data.EvalSplit != "" {
		t.evalSp, err = dataset.OpenSplit(cfg, cfg.Data.EvalSplit, dataset.SplitOptions{})
		if err == nil {
			if sum := t.evalSp.Problems.Summary(); sum != "" {
				t.log("warning: evaluation split %q: %s", cfg.Data.EvalSplit, sum)
			}
		}
	}
	st := statusOf(ctx, err)
	sum := sha256.Sum256(cfg.YAML())
	st.Config = hex.EncodeToString(sum[:8])
	st.Host, _ = os.Hostname()
	st.Procs = runtime.GOMAXPROCS(0)
	a, aerr := t.agree("setup", st)
	if aerr != nil {
		return 0, nil, aerr
	}
	if a.code != codeOK {
		return 0, nil, t.stopErr(a, err)
	}
	var ranks []string
	for r, s := range a.all {
		if s.Config != a.all[0].Config {
			return 0, nil, dist.Agreed(fmt.Errorf("rank %d runs another configuration than rank 0: give every rank the same -c, -o and -r", r))
		}
		ranks = append(ranks, fmt.Sprintf("%d on %s with GOMAXPROCS %d", r, s.Host, s.Procs))
	}
	t.log("data parallel over %d ranks (%s, %s): global batch %d, %d to %d images per rank; ranks %s",
		t.size, t.comm.Library(), t.comm.Launcher(), cfg.Train.BatchSize, cfg.Train.BatchSize/t.size, (cfg.Train.BatchSize+t.size-1)/t.size,
		strings.Join(ranks, ", "))

	// Rank 0's state, as a checkpoint in memory, to every rank.
	var blob []byte
	if t.rank == 0 {
		c := t.snapshot(start, state)
		if len(t.resumedSkips) > 0 {
			js, _ := json.Marshal(toSkipped(t.resumedSkips))
			c.Meta[skippedMeta] = string(js)
		}
		var buf bytes.Buffer
		if err := checkpoint.Write(&buf, c); err != nil {
			return 0, nil, err
		}
		blob = buf.Bytes()
	}
	blob, err = t.comm.BcastBytes("the weights and state from rank 0", blob, 0)
	if err != nil {
		return 0, nil, err
	}
	if t.rank == 0 {
		return start, state, nil
	}
	c, err := checkpoint.Read(bytes.NewReader(blob), int64(len(blob)))
	if err != nil {
		return 0, nil, fmt.Errorf("the state from rank 0: %w", err)
	}
	if err := t.det.LoadCheckpoint(c); err != nil {
		return 0, nil, fmt.Errorf("the state from rank 0: %w", err)
	}
	if err := t.loadOptimizer(c); err != nil {
		return 0, nil, fmt.Errorf("the state from rank 0: %w", err)
	}
	if err := t.restoreMeta(c, ""); err != nil {
		return 0, nil, err
	}
	return int(c.State.Iteration), c.State.DataOrder, nil
}

// restoreMeta takes the best score and the skipped images from a resumed
// checkpoint's Meta (from: its path, for messages).
func (t *trainer) restoreMeta(c *checkpoint.Checkpoint, from string) error {
	if s, ok := c.Meta["best_score"]; ok {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			t.best = v
			if _, err := os.Stat(filepath.Join(t.opt.OutDir, BestFile)); err == nil {
				t.bestPath = filepath.Join(t.opt.OutDir, BestFile)
			}
		}
	}
	if s, ok := c.Meta[skippedMeta]; ok {
		var list []skippedImage
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return fmt.Errorf("%s: meta %s: %w", from, skippedMeta, err)
		}
		for _, si := range list {
			t.resumedSkips = append(t.resumedSkips, dataset.Skip{Index: si.Index, Err: errors.New(si.Error)})
		}
	}
	return nil
}

// sumGrads adds every rank's parameter gradients, in rank order: afterwards
// every rank holds the same gradients, those of the global batch.
func (t *trainer) sumGrads() error {
	ps := t.det.Params.Params()
	n := 0
	for _, p := range ps {
		if p.Trainable {
			n += len(p.Grad)
		}
	}
	if cap(t.flat) < n {
		t.flat = make([]float32, n)
	}
	flat := t.flat[:n]
	off := 0
	for _, p := range ps {
		if p.Trainable {
			off += copy(flat[off:], p.Grad)
		}
	}
	if err := t.comm.SumFloat32("gradients", flat); err != nil {
		return err
	}
	off = 0
	for _, p := range ps {
		if p.Trainable {
			off += copy(p.Grad, flat[off:off+len(p.Grad)])
		}
	}
	return nil
}

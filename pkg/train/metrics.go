package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"yolodistill/pkg/atomicfile"
)

// Record is one line of the run folder's metrics.jsonl.
type Record struct {
	// Iter is the number of iterations completed, counted from 1: the
	// record of iteration N is written after N steps, like the progress
	// line "iter N/max" and the checkpoint model_<N>.ckpt. An evaluation
	// record (Eval set, no Loss) is of the model after Iter iterations.
	Iter int `json:"iter"`
	// LR is the learning rate of iteration Iter's step.
	LR float64 `json:"lr"`
	// Loss is the total loss of iteration Iter's step, the sum of Parts.
	Loss       float64            `json:"loss"`
	Parts      map[string]float64 `json:"parts,omitempty"`
	ImagesPerS float64            `json:"images_per_s"`
	Eval       map[string]float64 `json:"eval,omitempty"`
	// Skipped is the number of distinct training images skipped so far
	// because they could not be loaded (absent when none).
	Skipped int `json:"skipped_images,omitempty"`
	// CollectiveShare is, in a data-parallel run, the share of rank 0's wall
	// time since the last record spent in collectives (summing gradients,
	// BatchNorm statistics and losses, agreeing; waiting for slower ranks
	// included); absent for a single process.
	CollectiveShare float64 `json:"collective_share,omitempty"`
}

// MetricsLog appends Records as JSON lines to a file.
type MetricsLog struct {
	f *os.File
}

// OpenMetrics opens path for appending. Lines with iter > done are dropped
// first (atomically), so that a run resumed from the checkpoint after done
// iterations (model_<done>.ckpt) continues a log that is identical to an
// uninterrupted run's.
func OpenMetrics(path string, done int) (*MetricsLog, error) {
	if old, err := os.ReadFile(path); err == nil {
		var kept bytes.Buffer
		sc := bufio.NewScanner(bytes.NewReader(old))
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var r Record
			if json.Unmarshal(sc.Bytes(), &r) != nil || r.Iter > done {
				continue
			}
			kept.Write(sc.Bytes())
			kept.WriteByte('\n')
		}
		if err := atomicfile.WriteBytes(path, kept.Bytes()); err != nil {
			return nil, err
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	return &MetricsLog{f: f}, nil
}

// Write appends one record.
func (m *MetricsLog) Write(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = m.f.Write(append(b, '\n'))
	return err
}

// Close flushes and closes the file.
func (m *MetricsLog) Close() error {
	if err := m.f.Sync(); err != nil {
		m.f.Close()
		return err
	}
	return m.f.Close()
}

// ReadMetrics reads every record of a metrics.jsonl stream.
func ReadMetrics(r io.Reader) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	line := 0
	for sc.Scan() {
		line++
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}

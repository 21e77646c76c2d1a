package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/train"
)

const preset = "../../pipelines/configs/synth_student.yml"

// tiny shrinks the synthetic student preset to a few seconds of CPU: 64 and
// 96 px inputs (multi-scale), batch 2, 32 training and 4 eval images.
var tiny = []string{
	"-o", "model.head_width=0.125",
	"-o", "data.synth.num_images=40",
	"-o", "data.synth.image_size=64",
	"-o", "data.augment.multi_scale=[64, 96]",
	"-o", "data.workers=2",
	"-o", "eval.size=64",
	"-o", "eval.batch_size=4",
	"-o", "train.batch_size=2",
	"-o", "train.warmup_steps=2",
	"-o", "train.log_iter=1",
}

func tinyArgs(out string, extra ...string) []string {
	a := append([]string{"-c", preset, "--out", out}, tiny...)
	return append(a, extra...)
}

// overrides turns "-o" flag lists into the overrides config.Load takes.
func overrides(flags ...[]string) []string {
	var o []string
	for _, f := range flags {
		for i := 1; i < len(f); i += 2 {
			o = append(o, f[i])
		}
	}
	return o
}

// The child process mode: a re-exec of the test binary runs the tool, pausing
// (until interrupted or killed) before the iteration DETECT_TRAIN_PAUSE_AT;
// under mpirun, only on rank DETECT_TRAIN_PAUSE_RANK when that is set.
func TestMain(m *testing.M) {
	if args := os.Getenv("DETECT_TRAIN_CHILD_ARGS"); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		rank, one := os.LookupEnv("DETECT_TRAIN_PAUSE_RANK")
		if p := os.Getenv("DETECT_TRAIN_PAUSE_AT"); p != "" && (!one || rank == os.Getenv("OMPI_COMM_WORLD_RANK")) {
			at, _ := strconv.Atoi(p)
			testHooks.Prepare = func(ctx context.Context, it int, _ *augment.Batch, _ *detector.Net) error {
				if it == at {
					fmt.Fprintln(os.Stderr, "PAUSED")
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			}
		}
		ctx, stop := cli.SignalContext()
		code := run(ctx, a, os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// child starts the tool in a child process and waits until it pauses before
// iteration pauseAt.
func child(t *testing.T, pauseAt int, args []string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	enc, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DETECT_TRAIN_CHILD_ARGS="+string(enc), "DETECT_TRAIN_PAUSE_AT="+strconv.Itoa(pauseAt))
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	paused := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sent := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if sc.Text() == "PAUSED" && !sent {
				paused <- true
				sent = true
			}
		}
		if !sent {
			paused <- false
		}
	}()
	select {
	case ok := <-paused:
		if !ok {
			cmd.Wait()
			t.Fatalf("child ended before pausing:\n%s", log.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("child did not pause:\n%s", log.String())
	}
	return cmd, &log
}

// losses returns metrics.jsonl without the wall-clock throughput.
func losses(t *testing.T, dir string) []train.Record {
	t.Helper()
	recs := clitest.JSONLines[train.Record](t, filepath.Join(dir, train.MetricsFile))
	for i := range recs {
		recs[i].ImagesPerS = 0
	}
	return recs
}

func sameTensors(t *testing.T, a, b string) {
	t.Helper()
	ca, err := checkpoint.Load(a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := checkpoint.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ca.Sections, cb.Sections) || ca.State.Iteration != cb.State.Iteration || !bytes.Equal(ca.State.DataOrder, cb.State.DataOrder) {
		t.Errorf("%s and %s differ", a, b)
	}
}

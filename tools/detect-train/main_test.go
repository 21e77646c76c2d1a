package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"yolodistill/pkg/augment"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/config"
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

// The child process mode: a re-exec of the test binary runs the tool, pausing
// (until interrupted or killed) before the iteration DETECT_TRAIN_PAUSE_AT.
func TestMain(m *testing.M) {
	if args := os.Getenv("DETECT_TRAIN_CHILD_ARGS"); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if p := os.Getenv("DETECT_TRAIN_PAUSE_AT"); p != "" {
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

func runTool(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
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
	f, err := os.Open(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := train.ReadMetrics(f)
	if err != nil {
		t.Fatal(err)
	}
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

// TestExactResumeAfterSIGKILL: a run killed (SIGKILL) after its checkpoint at
// 8 iterations (and after logging iterations 8 and 9), resumed with -r,
// logs the same losses, bit for bit, and ends with the same weights as a run
// that was never interrupted.
func TestExactResumeAfterSIGKILL(t *testing.T) {
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	extra := []string{"-o", "train.max_iters=14", "-o", "train.snapshot_iter=4"}
	if code, _, stderr := runTool(t, tinyArgs(a, extra...)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, stderr)
	}
	cmd, log := child(t, 10, tinyArgs(b, extra...))
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(b, train.FinalFile)); err == nil {
		t.Fatalf("the killed run got to the end:\n%s", log)
	}
	if got := len(losses(t, b)); got < 10 {
		t.Fatalf("killed run logged %d records, want at least 10 (past the checkpoint)", got)
	}
	code, _, stderr := runTool(t, tinyArgs(b, append(extra, "-r", train.SnapshotPath(b, 8))...)...)
	if code != 0 {
		t.Fatalf("resumed run: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "resumed from") {
		t.Errorf("no resume message:\n%s", stderr)
	}
	ra, rb := losses(t, a), losses(t, b)
	if len(ra) < 14 || !reflect.DeepEqual(ra, rb) {
		t.Errorf("metrics differ:\nuninterrupted %+v\nresumed       %+v", ra, rb)
	}
	sameTensors(t, filepath.Join(a, train.FinalFile), filepath.Join(b, train.FinalFile))
	for _, f := range []string{train.BestFile, train.LossPlotFile, train.ConfigFile} {
		if _, err := os.Stat(filepath.Join(b, f)); err != nil {
			t.Errorf("resumed run folder lacks %s", f)
		}
	}
}

// TestSIGINTSavesAndExits130: SIGINT during training saves the state of the
// last completed iteration and exits 130; resuming from it finishes the run.
func TestSIGINTSavesAndExits130(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	extra := []string{"-o", "train.max_iters=8", "-o", "train.snapshot_iter=100", "-o", `data.eval_split=""`}
	cmd, log := child(t, 5, tinyArgs(dir, extra...))
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if cmd.ProcessState.ExitCode() != cli.ExitInterrupted {
		t.Fatalf("exit %v, want 130:\n%s", err, log)
	}
	want := train.SnapshotPath(dir, 5)
	if !strings.Contains(log.String(), "interrupted after 5 iterations; saved "+want) {
		t.Errorf("stderr does not name the checkpoint:\n%s", log)
	}
	c, err := checkpoint.Load(want)
	if err != nil || c.State.Iteration != 5 {
		t.Fatalf("interruption checkpoint: %v", err)
	}
	// -r without -c: the checkpoint's own configuration.
	code, _, stderr := runTool(t, "-r", want, "--out", dir)
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s", code, stderr)
	}
	if len(losses(t, dir)) != 8 {
		t.Errorf("resumed run has %d records, want 8", len(losses(t, dir)))
	}
}

// TestNaNGuard: an absurd learning rate makes the loss non-finite; the tool
// exits 1 naming the iteration and the last good checkpoint, which loads.
func TestNaNGuard(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, _, stderr := runTool(t, tinyArgs(dir, "-o", "train.base_lr=1e6", "-o", "train.warmup_steps=0",
		"-o", "train.max_iters=40", "-o", "train.snapshot_iter=1", "-o", "train.keep_last=1", "-o", `data.eval_split=""`)...)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, stderr)
	}
	m := regexp.MustCompile(`error: iteration (\d+): loss is (NaN|[+-]Inf) .*the last good checkpoint is (\S+) `).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("stderr does not name the iteration and checkpoint:\n%s", stderr)
	}
	it, _ := strconv.Atoi(m[1])
	if m[3] != train.SnapshotPath(dir, it) {
		t.Errorf("last good checkpoint %s, want %s", m[3], train.SnapshotPath(dir, it))
	}
	c, err := checkpoint.Load(m[3])
	if err != nil || c.State.Iteration != int64(it) {
		t.Fatalf("last good checkpoint %s: %v", m[3], err)
	}
	if _, err := os.Stat(filepath.Join(dir, train.FinalFile)); err == nil {
		t.Error("model_final written after a non-finite loss")
	}
}

// fixtures writes checkpoints for the bad-input tests: one of the tiny model
// (right), one of a wider head (other), and a truncated copy of right.
func fixtures(t *testing.T) (right, other, truncated string) {
	t.Helper()
	dir := t.TempDir()
	mk := func(name string, extra ...string) string {
		var o []string
		for i := 1; i < len(tiny); i += 2 {
			o = append(o, tiny[i])
		}
		cfg, err := config.Load(preset, append(o, extra...))
		if err != nil {
			t.Fatal(err)
		}
		d, err := detector.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := checkpoint.Save(p, d.ToCheckpoint()); err != nil {
			t.Fatal(err)
		}
		return p
	}
	right = mk("right.ckpt")
	other = mk("other.ckpt", "model.head_width=0.25")
	data, err := os.ReadFile(right)
	if err != nil {
		t.Fatal(err)
	}
	truncated = filepath.Join(dir, "truncated.ckpt")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	return right, other, truncated
}

func TestBadInputs(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	malformed := filepath.Join(tmp, "bad.yml")
	os.WriteFile(malformed, []byte("model:\n  backbone: [mobilenet_v1\n"), 0o644)
	right, other, truncated := fixtures(t)
	missing404 := httptest.NewServer(http.NotFoundHandler())
	defer missing404.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/model.ckpt"
	closed.Close()
	short := []string{"-o", "train.max_iters=1", "-o", `data.eval_split=""`}
	cases := []struct {
		name string
		args []string
		code int
		want []string // substrings of stderr
	}{
		{"help", []string{"--help"}, 0, []string{"Usage: detect-train", "--pretrained=PATH|URL"}},
		{"no config", []string{"--out", out}, 2, []string{"-c CONFIG is required"}},
		{"unknown flag", []string{"-c", preset, "--bogus"}, 2, []string{"unknown flag --bogus"}},
		{"missing config", []string{"-c", filepath.Join(tmp, "nope.yml")}, 1, []string{"nope.yml", "cannot read config"}},
		{"malformed config", []string{"-c", malformed}, 1, []string{"bad.yml:2"}},
		{"unknown key", tinyArgs(out, "-o", "train.base_lrr=0.1"), 2, []string{"train.base_lrr", "did you mean train.base_lr?"}},
		{"unknown section", tinyArgs(out, "-o", "no_such_key=1"), 2, []string{"no_such_key"}},
		{"wrong type", tinyArgs(out, "-o", "train.max_iters=1.5"), 2, []string{"train.max_iters", "1.5"}},
		{"override refused by validation", tinyArgs(out, "-o", "train.max_iters=-3"), 2, []string{"-o train.max_iters=-3", "train.max_iters"}},
		{"not key=value", tinyArgs(out, "-o", "train.max_iters"), 2, []string{"want key=value"}},
		{"checkpoint of another model", tinyArgs(out, append(short, "-r", other)...), 1, []string{"other.ckpt", "head.0.conv0.weight: shape [128 256 1 1] in checkpoint, [64 256 1 1] in model"}},
		{"checkpoint without optimizer state", tinyArgs(out, append(short, "-r", right)...), 1, []string{"right.ckpt", "optimizer"}},
		{"truncated checkpoint", tinyArgs(out, append(short, "-r", truncated)...), 1, []string{"truncated.ckpt", "truncated"}},
		{"truncated checkpoint without -c", []string{"-r", truncated}, 1, []string{"truncated.ckpt", "truncated"}},
		{"pretrained of another model", tinyArgs(out, append(short, "--pretrained", other)...), 1, []string{"pretrained", "other.ckpt", "head.0.conv0.weight"}},
		{"pretrained missing file", tinyArgs(out, append(short, "--pretrained", filepath.Join(tmp, "none.ckpt"))...), 1, []string{"none.ckpt"}},
		{"pretrained URL 404", tinyArgs(out, append(short, "--cache-dir", filepath.Join(tmp, "cache"), "--pretrained", missing404.URL+"/m.ckpt")...), 1, []string{missing404.URL + "/m.ckpt", "404"}},
		{"pretrained URL refused", tinyArgs(out, append(short, "--cache-dir", filepath.Join(tmp, "cache"), "--pretrained", closedURL)...), 1, []string{closedURL}},
	}
	for _, tc := range cases {
		code, stdout, stderr := runTool(t, tc.args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s", tc.name, code, tc.code, stderr)
			continue
		}
		if stdout != "" {
			t.Errorf("%s: stdout %q, want nothing", tc.name, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", tc.name, w, stderr)
			}
		}
		if tc.code == 1 && !strings.HasPrefix(stderr, name+": ") {
			t.Errorf("%s: message not prefixed with the tool name:\n%s", tc.name, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(out, train.FinalFile)); err == nil {
		t.Error("a failed run wrote model_final")
	}
}

// TestPretrainedURL: weights served over http are downloaded once into the
// cache and loaded; a model tensor absent from the checkpoint is reported.
func TestPretrainedURL(t *testing.T) {
	right, _, _ := fixtures(t)
	c, err := checkpoint.Load(right)
	if err != nil {
		t.Fatal(err)
	}
	sec := c.Section(checkpoint.SectionParams)
	dropped := sec.Tensors[0].Name
	sec.Tensors = sec.Tensors[1:]
	partial := filepath.Join(t.TempDir(), "partial.ckpt")
	if err := checkpoint.Save(partial, c); err != nil {
		t.Fatal(err)
	}
	body, _ := os.ReadFile(partial)
	gets := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets++
		io.Copy(w, bytes.NewReader(body))
	}))
	defer srv.Close()
	cache := filepath.Join(t.TempDir(), "cache")
	for i := 0; i < 2; i++ {
		out := filepath.Join(t.TempDir(), "run")
		code, _, stderr := runTool(t, tinyArgs(out, "-o", "train.max_iters=1", "-o", `data.eval_split=""`,
			"--cache-dir", cache, "--pretrained", srv.URL+"/w/partial.ckpt")...)
		if code != 0 {
			t.Fatalf("run %d: exit %d\n%s", i, code, stderr)
		}
		if !strings.Contains(stderr, "keep their initial values: "+dropped) || !strings.Contains(stderr, "loaded ") {
			t.Errorf("run %d: stderr does not report the loaded and missing tensors:\n%s", i, stderr)
		}
	}
	if gets != 1 {
		t.Errorf("%d downloads, want 1 (cached)", gets)
	}
}

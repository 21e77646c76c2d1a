//go:build linux

// The hostile-input catalogue: every tool fed broken, absurd, foreign and
// unlucky inputs, as a user (or an attacker's file) would, through the built
// binaries. Each case checks the exit code, the message (naming the file and
// what is wrong, never a Go stack trace) and what is left on disk; the cases
// where memory is the risk run under an address-space limit and check the
// child's peak resident memory (the test process itself is never limited).
package tools_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli/clitest"
	"yolodistill/pkg/detector/detectortest"
	"yolodistill/pkg/softtarget"
)

var (
	binDir   string // every tool, built once
	buildErr error
)

func TestMain(m *testing.M) {
	if os.Getenv(spawnEnv) != "" {
		os.Exit(spawn())
	}
	dir, err := os.MkdirTemp("", "catalogue-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	buildErr = clitest.Build(dir, "./dataset", "./detect-train", "./teacher-dump", "./student-train", "./detect-eval", "./detect-infer", "./model-inspect", "./detect-export")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// memLimitKB is the address-space limit (ulimit -v) of the memory cases:
// room for Go's and OpenBLAS's reservations and a tiny model, far below
// what the inputs of those cases used to take (1.8 to 23 GB).
const memLimitKB = 4 << 20

// hostile is one catalogue case: a shell command over the built tools, run
// in the fixture folder.
type hostile struct {
	name   string
	cmd    string
	code   int
	stderr []string // substrings of stderr
	// absent and present are paths (relative to the fixture folder) that
	// must not / must exist afterwards: nothing half-written, no folder of
	// a failed run, outputs of a run that succeeded.
	absent, present []string
	// maxLines bounds stdout's lines (0: not checked).
	maxLines int
	// maxRSSMB > 0 runs the case under memLimitKB and bounds the peak
	// resident memory of the tool, in MB.
	maxRSSMB int
	// maxSeconds bounds the wall time (0: 60 s).
	maxSeconds float64
	// report: the tool reports on stdout (dataset check), not in an
	// error line on stderr.
	report bool
}

// result is what a case's process did.
type result struct {
	code           int
	stdout, stderr string
	rssMB          float64
	seconds        float64
}

// The memory cases run their tool through a spawner: this test binary
// started again with spawnEnv set, which runs the command and writes the
// child's peak resident memory (kB) to the file spawnEnv names. A child's
// peak counts the memory of the process it was started from (Linux carries
// it over fork and exec), so the tool must start from a small process, not
// from this test with its fixtures in memory.
const spawnEnv = "CATALOGUE_SPAWN_RSS_FILE"

func spawn() int {
	c := exec.Command(os.Args[1], os.Args[2:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := c.Run()
	if c.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		return 127
	}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
		os.WriteFile(os.Getenv(spawnEnv), []byte(fmt.Sprint(ru.Maxrss)), 0o644)
	}
	return c.ProcessState.ExitCode()
}

// runCase runs cmd with the tools first on PATH in dir; with limit, under
// the memory limit and through the spawner, which measures its peak memory.
func runCase(t *testing.T, dir, cmd string, limit bool) result {
	t.Helper()
	args := []string{"bash", "-c", "set -o pipefail; " + cmd}
	rssFile := filepath.Join(t.TempDir(), "rss")
	if limit {
		args = []string{os.Args[0], "bash", "-c", fmt.Sprintf("ulimit -v %d; exec %s", memLimitKB, cmd)}
	}
	c := exec.Command(args[0], args[1:]...)
	c.Dir = dir
	c.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"), "NO_COLOR=1")
	if limit {
		c.Env = append(c.Env, spawnEnv+"="+rssFile)
	}
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	start := time.Now()
	err := c.Run()
	r := result{stdout: out.String(), stderr: errb.String(), seconds: time.Since(start).Seconds()}
	if c.ProcessState == nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	r.code = c.ProcessState.ExitCode()
	if b, err := os.ReadFile(rssFile); err == nil {
		var kb float64
		fmt.Sscan(string(b), &kb)
		r.rssMB = kb / 1024
	}
	return r
}

// check compares a result with its case.
func (h hostile) check(t *testing.T, dir string, r result) {
	t.Helper()
	if r.code != h.code {
		t.Errorf("exit %d, want %d\nstderr:\n%s", r.code, h.code, r.stderr)
	}
	for _, s := range h.stderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	for _, bad := range []string{"goroutine ", "panic:", "runtime.", "fatal error"} {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("a Go crash or stack trace reached the user (%q):\n%s", bad, r.stderr)
		}
	}
	if h.code != 0 && !h.report {
		// The message that says what went wrong is the tool's own line.
		var found bool
		for _, line := range strings.Split(r.stderr, "\n") {
			if i := strings.Index(line, ": "); i > 0 && strings.Contains(line, "error") && !strings.Contains(line[:i], " ") {
				found = true
			}
		}
		if !found && h.code != 130 {
			t.Errorf("no \"TOOL: error: ...\" line:\n%s", r.stderr)
		}
	}
	for _, p := range h.absent {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			ents, _ := os.ReadDir(filepath.Join(dir, p))
			t.Errorf("%s was left behind (%d entries)", p, len(ents))
		}
	}
	for _, p := range h.present {
		if m, _ := filepath.Glob(filepath.Join(dir, p)); len(m) == 0 {
			t.Errorf("%s is missing", p)
		}
	}
	if h.maxLines > 0 {
		if n := strings.Count(r.stdout, "\n"); n > h.maxLines {
			t.Errorf("%d lines on stdout, want at most %d", n, h.maxLines)
		}
	}
	if h.maxRSSMB > 0 && r.rssMB > float64(h.maxRSSMB) {
		t.Errorf("peak resident memory %.0f MB, want at most %d MB", r.rssMB, h.maxRSSMB)
	}
	limit := h.maxSeconds
	if limit == 0 {
		limit = 60
	}
	if r.seconds > limit {
		t.Errorf("took %.1f s, want at most %g s", r.seconds, limit)
	}
}

// TestHostileInputs is the catalogue.
func TestHostileInputs(t *testing.T) {
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	dir := t.TempDir()
	f := makeFixtures(t, dir)

	cases := []hostile{
		// Memory: duplicate boxes (3,000 copies of one object in one VOC
		// annotation, 660 KB), 200,000 objects (44 MB), absurd input sizes.
		{name: "dataset check: 3,000 copies of one box", cmd: "dataset check vocdup --images none", code: 0,
			stderr: nil, maxLines: 30, maxRSSMB: 300, maxSeconds: 20},
		{name: "detect-train: 3,000 copies of one box", cmd: "detect-train -c tinyvoc.yml --out run_dup", code: 0,
			stderr:  []string{"warning: training split \"train\": 0 errors, 4 warnings (box-duplicate 4); the first: vocdup/Annotations/synth_000000.xml:22"},
			present: []string{"run_dup/model_final.ckpt"}, maxRSSMB: 800, maxSeconds: 40},
		{name: "dataset check: 200,000 objects in one image", cmd: "dataset check big --images none", code: 1,
			stderr: nil, maxLines: 5, maxRSSMB: 500, maxSeconds: 20, report: true},
		{name: "dataset check: an annotation over --max-annotation-mb", cmd: "dataset check big --images none --max-annotation-mb 10", code: 1,
			maxLines: 5, maxRSSMB: 300, report: true},
		{name: "detect-infer --size 320000", cmd: "detect-infer -c tiny.yml --weights model.ckpt --infer-dir imgs --output-dir out_big --size 320000", code: 2,
			stderr: []string{"detect-infer: error: --size 320000: a 320000x320000 input needs about", "the largest input that fits is"},
			absent: []string{"out_big"}, maxRSSMB: 300},
		{name: "detect-infer -o eval.size=320000", cmd: "detect-infer -c tiny.yml -o eval.size=320000 --weights model.ckpt --infer-dir imgs --output-dir out_big", code: 2,
			stderr: []string{"-o eval.size=320000: eval.size: a 320000x320000 input needs about"}, absent: []string{"out_big"}, maxRSSMB: 300},
		{name: "detect-eval --size 320000", cmd: "detect-eval -c tiny.yml --weights model.ckpt --size 320000", code: 2,
			stderr: []string{"--size 320000: a 320000x320000 input needs about"}, absent: []string{"bbox.json"}, maxRSSMB: 300},
		{name: "detect-train -o data.augment.multi_scale=[320000]", cmd: "detect-train -c tiny.yml -o 'data.augment.multi_scale=[320000]' --out run_big", code: 2,
			stderr: []string{"-o data.augment.multi_scale=[320000]: data.augment.multi_scale: a 320000x320000 input needs about", "for a training graph of 2 image(s)"},
			absent: []string{"run_big"}, maxRSSMB: 300},

		// Network.
		{name: "a server that accepts and never answers", cmd: "detect-train -c tiny.yml --out run_net --idle-timeout 1s --cache-dir cache --pretrained " + f.silentURL, code: 1,
			stderr: []string{f.silentURL, "no response within 1s", "--idle-timeout"}, absent: []string{"run_net"}, maxSeconds: 20},
		{name: "404", cmd: "detect-train -c tiny.yml --out run_404 --cache-dir cache --pretrained " + f.missingURL, code: 1,
			stderr: []string{f.missingURL, "404"}, absent: []string{"run_404"}},

		// Outputs checked before the work.
		{name: "detect-eval --json onto a folder", cmd: "detect-eval -c tiny.yml --weights model.ckpt --json afolder", code: 1,
			stderr: []string{"--json: afolder is a folder: give a file name"}, absent: []string{"bbox.json"}, maxSeconds: 5},
		{name: "detect-eval: no room for the default bbox.json", cmd: "detect-eval -c tiny.yml --weights weights/model.ckpt", code: 0,
			stderr: []string{"warning: the detections are not saved: weights/bbox.json is a folder", "give --results FILE"}},
		{name: "detect-eval --results into a missing folder", cmd: "detect-eval -c tiny.yml --weights model.ckpt --results nowhere/r.json", code: 1,
			stderr: []string{"--results: nowhere/r.json: folder nowhere does not exist"}},
		{name: "teacher-dump --out onto a folder", cmd: "teacher-dump -c " + f.teacherYML + " --weights teacher.ckpt --student-config " + f.studentYML + " --out afolder", code: 1,
			stderr: []string{"--out: afolder is a folder: give a file name"}, maxSeconds: 5},
		{name: "detect-export --out onto a folder, before the weights are read", cmd: "detect-export -c tiny.yml --weights missing.ckpt --out afolder", code: 1,
			stderr: []string{"--out: afolder is a folder: give a file name"}, maxSeconds: 5},
		{name: "detect-infer --output-dir onto a file", cmd: "detect-infer -c tiny.yml --weights model.ckpt --infer-dir imgs --output-dir model.ckpt", code: 1,
			stderr: []string{"--output-dir: model.ckpt is a file, not a folder"}},
		{name: "detect-train into a run folder with checkpoints", cmd: "detect-train -c tiny.yml --out run_dt", code: 1,
			stderr: []string{"run folder run_dt already holds a run's checkpoints (model_final.ckpt)", "--force"}, present: []string{"run_dt/model_final.ckpt"}},
		{name: "a failed run leaves FAILED.txt beside its checkpoint", cmd: "detect-train -c tinyvoc.yml -o data.root=vocbroken -o data.skip_limit=0 -o train.max_iters=10 --out run_fail", code: 1,
			stderr: []string{"synth_000003.jpg", "more than the 0 that data.skip_limit=0 allows", "wrote run_fail/FAILED.txt"}, present: []string{"run_fail/FAILED.txt", "run_fail/model_*.ckpt"}},

		// Soft targets: other pictures under the same names; byte flips; foreign Arrow.
		{name: "soft targets dumped from other pictures", cmd: "student-train -c " + f.studentYML + " -o data.synth.seed=4 --soft-targets st.arrow --out run_seed", code: 1,
			stderr: []string{"view 0: the view rebuilt here is not the one the teacher saw", `data.synth.seed was "3" for the dump, is "4" here`},
			absent: []string{"run_seed"}},
		{name: "soft targets with a flipped byte", cmd: "student-train -c " + f.studentYML + " --soft-targets flipped.arrow --out run_flip", code: 1,
			stderr: []string{"flipped.arrow", "checksum mismatch"}, absent: []string{"run_flip"}},
		{name: "a foreign Arrow file", cmd: "student-train -c " + f.studentYML + " --soft-targets foreign.arrow --out run_foreign", code: 1,
			stderr: []string{"foreign.arrow: not a soft-target file"}, absent: []string{"run_foreign"}},
		{name: "multi_scale the soft targets do not have", cmd: "student-train -c " + f.studentYML + " -o 'data.augment.multi_scale=[128]' -o train.max_iters=1 --soft-targets st.arrow --out run_ms", code: 0,
			stderr: []string{"px, which data.augment.multi_scale [128] does not list: offline distillation trains at the sizes teacher-dump rebuilt the views at"}},

		// Resume with the other tool.
		{name: "detect-train -r a student-train checkpoint", cmd: "detect-train -r student.ckpt --out run_r1", code: 2,
			stderr: []string{"student.ckpt was written by student-train", "resume it with `student-train -r student.ckpt`"}, absent: []string{"run_r1"}},
		{name: "student-train -r a detect-train checkpoint", cmd: "student-train -r run_dt/model_final.ckpt --soft-targets st.arrow --out run_r2", code: 2,
			stderr: []string{"was written by detect-train (none), not student-train", "detect-train -r run_dt/model_final.ckpt"}, absent: []string{"run_r2"}},
		{name: "a checkpoint path that is a folder", cmd: "detect-train -r run_dt", code: 1,
			stderr: []string{"run_dt is a folder, not a checkpoint file"}},

		// The smaller cases.
		{name: "detect-infer follows symlinks", cmd: "detect-infer -c tiny.yml --weights model.ckpt --infer-dir links --output-dir out_links", code: 0,
			present: []string{"out_links/a.jpg", "out_links/detections.json"}},
		{name: "convert --skip-bad on unreadable COCO JSON", cmd: "dataset convert --from coco --to voc --skip-bad cocobad out_coco", code: 1,
			stderr: []string{"cocobad/annotations.json could not be read", "not unreadable input files"}, absent: []string{"out_coco"}},
		{name: "model-inspect -o KEY without =", cmd: "model-inspect -c tiny.yml -o train.max_iters", code: 2,
			stderr: []string{"-o train.max_iters: want key=value"}},
		{name: "results JSON without its closing ]", cmd: "detect-eval --gt vocdup --split train --dets truncated.json", code: 1,
			stderr: []string{"truncated.json: truncated: the file ends at line 1", "without the ']'"}},
		{name: "inverted boxes are named", cmd: "dataset check vocinv --images none", code: 0,
			stderr: nil},
		{name: "detect-train names the inverted box it drops", cmd: "detect-train -c tinyvoc.yml -o data.root=vocinv --out run_inv", code: 0,
			stderr: []string{"warning: training split \"train\": 0 errors, 1 warnings (box-dropped 1); the first: vocinv/Annotations/synth_000000.xml:10: warning: object 0: box [49,35,41,47) is inverted (right edge 41 left of the left edge 49"}},
		{name: "distill pairs of different spatial sizes", cmd: "student-train -c " + f.studentYML + " -t " + f.teacherYML + " --teacher-weights teacher.ckpt -o distill.loss=pairs -o 'distill.pairs=[{student: backbone.c4, teacher: backbone.c5}]' --out run_pairs", code: 2,
			stderr: []string{"distill.pairs.0: student backbone.c4 is", "their spatial sizes differ"}, absent: []string{"run_pairs"}},

		// Held before; kept in the catalogue.
		{name: "broken XML", cmd: "dataset check vocxml --images none", code: 1, report: true},
		{name: "../ in a file name", cmd: "dataset check vocesc --images none", code: 1, report: true},
		{name: "truncated checkpoint", cmd: "detect-infer -c tiny.yml --weights truncated.ckpt --infer-dir imgs --output-dir out_trunc", code: 1,
			stderr: []string{"truncated.ckpt", "truncated"}, absent: []string{"out_trunc"}},
	}
	stdoutWants := map[string][]string{
		"dataset check: 3,000 copies of one box":                {"object 4 and 2995 more objects overlap an earlier box", "2999 in all, of 3000 objects"},
		"dataset check: 200,000 objects in one image":           {"more than 10000 objects (data.max_objects; dataset's --max-objects): the image is left out (too-many-objects)"},
		"dataset check: an annotation over --max-annotation-mb": {"over the limit of 10.0 MiB; not read", "(file-too-large)"},
		"inverted boxes are named":                              {"is inverted (right edge"},
		"broken XML":                                            {"XML syntax error"},
		"../ in a file name":                                    {"escapes the image folder", "(path-escape)"},
	}
	for _, h := range cases {
		t.Run(h.name, func(t *testing.T) {
			r := runCase(t, dir, h.cmd, h.maxRSSMB > 0)
			t.Logf("%s: exit %d, %.1f s, peak %.0f MB", h.cmd, r.code, r.seconds, r.rssMB)
			h.check(t, dir, r)
			for _, s := range stdoutWants[h.name] {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%.2000s", s, r.stdout)
				}
			}
		})
	}

	// SIGINT during a silent download: exit 130 with a line saying so.
	t.Run("SIGINT during a download", func(t *testing.T) {
		c := exec.Command(filepath.Join(binDir, "detect-train"), "-c", "tiny.yml", "--out", "run_int", "--cache-dir", "cache", "--pretrained", f.silentURL)
		c.Dir = dir
		var errb bytes.Buffer
		c.Stderr = &errb
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		c.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			c.Process.Kill()
			t.Fatalf("still running 20 s after SIGINT:\n%s", errb.String())
		}
		h := hostile{code: 130, stderr: []string{"detect-train: download of " + f.silentURL + " interrupted"}, absent: []string{"run_int"}}
		h.check(t, dir, result{code: c.ProcessState.ExitCode(), stderr: errb.String()})
	})
}

// fixtures are the catalogue's inputs, in one folder.
type fixtures struct {
	teacherYML, studentYML string // teacher-dump's tiny test configurations
	silentURL, missingURL  string
}

func makeFixtures(t *testing.T, dir string) fixtures {
	t.Helper()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	f := fixtures{teacherYML: abs("teacher-dump/testdata/teacher.yml"), studentYML: abs("teacher-dump/testdata/student.yml")}
	in := func(p string) string { return filepath.Join(dir, p) }
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(in(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(in(p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sh := func(cmd string) {
		t.Helper()
		if r := runCase(t, dir, cmd, false); r.code != 0 {
			t.Fatalf("fixture %q: exit %d\n%s", cmd, r.code, r.stderr)
		}
	}

	// Configurations: the synthetic student preset at 64 px, tiny; the same
	// on a VOC folder.
	write("tiny.yml", fmt.Sprintf(`_base_: %s
model: {head_width: 0.125}
data:
  eval_split: val
  synth: {num_images: 40, image_size: 64}
  augment: {multi_scale: [64]}
eval: {size: 64, batch_size: 4}
train: {batch_size: 2, max_iters: 2, warmup_steps: 1, log_iter: 1, snapshot_iter: 100}
`, abs("../pipelines/configs/synth_student.yml")))
	write("tinyvoc.yml", "_base_: tiny.yml\ndata: {format: voc, root: vocdup, train_split: train, eval_split: \"\"}\n")

	// A VOC folder; a copy whose first annotation holds 3,000 copies of one
	// object; one of 200,000 objects; one with an inverted box; broken XML;
	// a file name with ../; JPEGs cut after their header.
	sh("dataset synth --out voc --format voc --images 20 --size 64 --seed 1")
	xml, err := os.ReadFile(in("voc/Annotations/synth_000000.xml"))
	if err != nil {
		t.Fatal(err)
	}
	head, rest, _ := strings.Cut(string(xml), "\t<object>")
	obj := "\t<object>" + rest[:strings.Index(rest, "</object>")+len("</object>\n")]
	for _, c := range []struct {
		name, xml string
	}{
		{"vocdup", head + strings.Repeat(obj, 3000) + "</annotation>\n"},
		{"vocinv", strings.Replace(string(xml), "<xmin>28</xmin>", "<xmin>50</xmin>", 1)},
		{"vocxml", strings.Replace(string(xml), "</size>", "</sise>", 1)},
		{"vocesc", strings.Replace(string(xml), "<filename>synth_000000.jpg", "<filename>../../etc/passwd", 1)},
		{"vocbroken", string(xml)},
	} {
		sh(fmt.Sprintf("cp -r voc %s", c.name))
		write(c.name+"/Annotations/synth_000000.xml", c.xml)
	}
	write("big/Annotations/synth_000000.xml", head+strings.Repeat(obj, 200000)+"</annotation>\n")
	// One training image cut after its header: found when decoded.
	b, _ := os.ReadFile(in("vocbroken/JPEGImages/synth_000003.jpg"))
	write("vocbroken/JPEGImages/synth_000003.jpg", string(b[:len(b)/3]))

	// Weights: a fresh tiny model; a truncated copy; a folder where the
	// default bbox.json would go; a detect-train run; a checkpoint that says
	// student-train wrote it.
	detectortest.Checkpoint(t, dir, "model.ckpt", in("tiny.yml"))
	ck, _ := os.ReadFile(in("model.ckpt"))
	write("truncated.ckpt", string(ck[:len(ck)/2]))
	write("weights/model.ckpt", string(ck))
	os.MkdirAll(in("weights/bbox.json"), 0o755)
	os.MkdirAll(in("afolder"), 0o755)
	sh("detect-train -c tiny.yml -o 'data.eval_split=\"\"' --out run_dt")
	c, err := checkpoint.Load(in("run_dt/model_final.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	c.Meta["tool"], c.Meta["recipe"] = "student-train", "fine_grained distillation, weight 1000, offline"
	if err := checkpoint.Save(in("student.ckpt"), c); err != nil {
		t.Fatal(err)
	}

	// Soft targets of teacher-dump's tiny teacher; a copy with one byte
	// flipped in a teacher output; an Arrow file of another program.
	detectortest.Checkpoint(t, dir, "teacher.ckpt", f.teacherYML)
	sh(fmt.Sprintf("teacher-dump -c %s --weights teacher.ckpt --student-config %s --shard 0/4 --out st.arrow", f.teacherYML, f.studentYML))
	write("flipped.arrow", string(flipByte(t, in("st.arrow"))))
	writeForeignArrow(t, in("foreign.arrow"))

	// Images through symlinks; an unreadable COCO JSON; a results file cut
	// before its closing ].
	os.MkdirAll(in("imgs"), 0o755)
	os.MkdirAll(in("links"), 0o755)
	sh("cp voc/JPEGImages/synth_000001.jpg imgs/")
	if err := os.Symlink(in("voc/JPEGImages/synth_000002.jpg"), in("links/a.jpg")); err != nil {
		t.Fatal(err)
	}
	write("cocobad/annotations.json", `{"images": [`)
	write("truncated.json", `[{"image_id": 0, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}`)

	// Servers: one that accepts and never answers, one that answers 404.
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(silent.Close)
	missing := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(missing.Close)
	f.silentURL, f.missingURL = silent.URL+"/x.ckpt", missing.URL+"/x.ckpt"
	return f
}

// flipByte returns the bytes of the soft-target file at path with one bit
// flipped in a teacher output value: the first offset past the middle whose
// flip the reader reports as a checksum mismatch (a flip in Arrow's padding
// changes nothing and is not what this case is about).
func flipByte(t *testing.T, path string) []byte {
	t.Helper()
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "f.arrow")
	for off := len(orig) / 2; off < len(orig); off += 7 {
		b := bytes.Clone(orig)
		b[off] ^= 0x10
		os.WriteFile(tmp, b, 0o644)
		r, err := softtarget.Open(tmp)
		if err != nil {
			continue
		}
		var v softtarget.View
		for err == nil {
			err = r.Next(&v)
		}
		r.Close()
		if err != nil && strings.Contains(err.Error(), "checksum mismatch") {
			return b
		}
	}
	t.Fatal("no byte flip gave a checksum mismatch")
	return nil
}

// writeForeignArrow writes an Arrow IPC file that another program could
// have written: one int64 column, no soft-target metadata.
func writeForeignArrow(t *testing.T, path string) {
	t.Helper()
	sc := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.AppendValues([]int64{1, 2, 3}, nil)
	col := b.NewArray()
	rec := array.NewRecordBatch(sc, []arrow.Array{col}, 3)
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := ipc.NewFileWriter(fh, ipc.WithSchema(sc))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fh.Close()
}

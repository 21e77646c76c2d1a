# make demo: teacher, soft targets, baseline and distilled student on the
# built-in synthetic set, evaluated and tabulated; outputs under $(DEMO)/.
# Every step is a file target: a failed step leaves no output file (tools write
# atomically; run folders are judged by their model_final.ckpt, written last),
# and a rerun redoes only what is missing. `make demo-clean` starts over.
#
# Networks and data: see pipelines/configs/demo_teacher.yml and
# demo_student.yml (their header says why these networks).

DEMO ?= out/demo
DEMO_TEACHER := pipelines/configs/demo_teacher.yml
DEMO_STUDENT := pipelines/configs/demo_student.yml
# Extra -o KEY=VALUE overrides for every demo training run, e.g.
# DEMO=/tmp/demo DEMO_O='train.max_iters=20' DEMO_VIEWS=1 for a quick smoke run.
DEMO_O ?=
# Input size of the evaluation: the configs' eval.size (96 px; the images are
# generated at 128 px and stretched to 96, so detect-infer draws on 128 px).
DEMO_SIZE ?= 96
# The streamed soft targets must hold train.max_iters batches (1000 batches
# of 8 = 5 epochs of the 1600 training images): empty DEMO_VIEWS lets
# teacher-dump work out the views the student needs (--student-config; the
# surplus is read and dropped); DEMO_VIEWS=N sets --views N (smoke runs).
DEMO_VIEWS ?=
demo_o = $(foreach kv,$(DEMO_O),-o $(kv))

.PHONY: demo-results demo-clean

demo-results: $(DEMO)/results.md ## demo steps without the build (used by demo)

demo-clean: ## remove the demo outputs (out/demo)
	rm -rf $(DEMO)

# The data: data.format synth in the demo configurations: every tool
# generates the same images in process from data.synth (pkg/dataset's
# generator, deterministic), so there is no data step. To look at the images,
# `bin/dataset synth --out DIR --format voc --images 2000 --size 128
# --classes circle,square --min-objects 1 --max-objects 3 --min-object 24
# --max-object 56` writes the same images and boxes to disk (JPEG); the
# test split is ImageSets/Main/test.txt (200 images), and
# `bin/detect-infer -c pipelines/configs/demo_teacher.yml --weights
# out/demo/teacher/model_final.ckpt --infer-dir DIR/JPEGImages --output-dir OUT`
# draws the boxes (docs/demo.jpg shows eight of them).

$(DEMO)/teacher/model_final.ckpt: $(DEMO_TEACHER)
	rm -rf $(@D)
	bin/detect-train -c $(DEMO_TEACHER) $(demo_o) --out $(@D)

$(DEMO)/baseline/model_final.ckpt: $(DEMO_STUDENT)
	rm -rf $(@D)
	bin/detect-train -c $(DEMO_STUDENT) $(demo_o) --out $(@D)

# Distilled: the teacher's soft targets streamed straight into the student
# (an Arrow IPC stream through the pipe; nothing stored).
$(DEMO)/distilled/model_final.ckpt: $(DEMO)/teacher/model_final.ckpt $(DEMO_STUDENT)
	rm -rf $(@D)
	bin/teacher-dump -c $(DEMO_TEACHER) $(demo_o) --weights $< \
	  --student-config $(DEMO_STUDENT) $(foreach kv,$(DEMO_O),--student-override $(kv)) \
	  $(if $(DEMO_VIEWS),--views $(DEMO_VIEWS)) --out - \
	| bin/student-train -c $(DEMO_STUDENT) $(demo_o) --soft-targets - --out $(@D)

$(DEMO)/eval/teacher.json: $(DEMO)/teacher/model_final.ckpt
	bash pipelines/evaluate.sh teacher $(DEMO_TEACHER) $< $@ $(DEMO_SIZE) $(DEMO_O)
$(DEMO)/eval/baseline.json: $(DEMO)/baseline/model_final.ckpt
	bash pipelines/evaluate.sh baseline $(DEMO_STUDENT) $< $@ $(DEMO_SIZE) $(DEMO_O)
$(DEMO)/eval/distilled.json: $(DEMO)/distilled/model_final.ckpt
	bash pipelines/evaluate.sh distilled $(DEMO_STUDENT) $< $@ $(DEMO_SIZE) $(DEMO_O)

$(DEMO)/results.md: $(DEMO)/eval/teacher.json $(DEMO)/eval/baseline.json $(DEMO)/eval/distilled.json
	bash pipelines/table.sh "demo (synthetic set, test split)" $^ >$@

# The knobs of the outputs (pipelines/knobs.mk), so that a smoke run's models
# and table are never taken for the demo's: another DEMO_O redoes every step,
# another DEMO_VIEWS the distilled student, another DEMO_SIZE the evaluations.
$(DEMO)/teacher/model_final.ckpt $(DEMO)/baseline/model_final.ckpt $(DEMO)/distilled/model_final.ckpt: $(DEMO)/knobs.txt
$(DEMO)/distilled/model_final.ckpt: $(DEMO)/knobs-views.txt
$(DEMO)/eval/teacher.json $(DEMO)/eval/baseline.json $(DEMO)/eval/distilled.json: $(DEMO)/knobs-eval.txt
$(eval $(call knobs_rule,$(DEMO)/knobs.txt,follow,demo,,DEMO_O))
$(eval $(call knobs_rule,$(DEMO)/knobs-views.txt,follow,demo,,DEMO_VIEWS))
$(eval $(call knobs_rule,$(DEMO)/knobs-eval.txt,follow,demo,,DEMO_SIZE))

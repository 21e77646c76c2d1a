# make bccd-bench BCCD=path/to/BCCD: the headline table on real data.
# One teacher (bccd_teacher.yml, ResNet18 x0.5, its train.seed),
# then per seed in SEEDS: the baseline student (bccd_student.yml, MobileNetV1
# x0.25, detect-train) and three distilled students (student-train): L2 weight
# 100 (PaddleDetection's VOC recipe), fine-grained weight 1000 with the
# fine-grained YOLOv3 loss (its COCO recipe), and both losses together
# (distill.loss=l2+fine_grained, weights 100 and 1000), with train.seed=SEED.
# Both presets train multi-scale (a random input size per batch, 320-608 in
# steps of 32), so each row of the table is one model evaluated at three sizes.
# For one seed all four students start from the same initial weights and see
# the same batches (same images, flips and input sizes) in the same order: the
# soft targets are dumped with --seed SEED from the student's own loader,
# enough views for all train.max_iters batches (pipelines/views.sh), so the
# distilled students replay exactly the baseline's batches. The dump (dense
# float32, a few GB per seed) is an intermediate file, deleted at the end of
# the make run. With flips as the only augmentation each image has few
# distinct views, so teacher-dump runs the teacher on few of them and writes
# the rest from memory (--cache-mb).
# Every model is evaluated on the test split at each of BCCD_SIZES;
# pipelines/bccd_results.sh writes $(BCCD_OUT)/results.json (mean, std over
# seeds, paired differences distilled - baseline per seed with their standard
# error) and $(BCCD_OUT)/results.md.
# BCCD_OUT records the knobs (BCCD, ITERS, SIZE, RECIPE_O in knobs.txt,
# pipelines/knobs.mk): other values into the same folder stop make with both
# sets (use another BCCD_OUT, delete it, or add REDO=1 to retrain); SEEDS and
# BCCD_SIZES (knobs-table.txt) remake the results.
# Smoke run (~5 minutes): make bccd-bench BCCD=path/to/BCCD ITERS=5 SEEDS=1 BCCD_SIZES=320 SIZE=320 BCCD_OUT=out/bccd-smoke

BCCD ?=
BCCD_OUT ?= out/bccd
SEEDS ?= 1 2 3
BCCD_SIZES ?= 608 416 320
BCCD_TEACHER := pipelines/configs/bccd_teacher.yml
BCCD_STUDENT := pipelines/configs/bccd_student.yml
# data.root, and ITERS / SIZE / RECIPE_O as for the recipes (pipelines/recipes.mk).
bccd_kv = data.root=$(BCCD) $(recipe_kv)
bccd_o = $(foreach kv,$(bccd_kv),-o $(kv))
# Distilled variants: name and the overrides that choose the loss.
BCCD_DISTILL := l2 fine_grained l2_fine_grained
bccd_loss_l2 := distill.loss=l2 distill.weight=100
bccd_loss_fine_grained := distill.loss=fine_grained distill.weight=1000 loss.use_fine_grained_loss=true
bccd_loss_l2_fine_grained := distill.loss=l2+fine_grained distill.weights=[100,1000] loss.use_fine_grained_loss=true

.PHONY: bccd-bench bccd-check

bccd-check:
	@[ -n "$(BCCD)" ] || { echo "bccd-bench: set BCCD=DIR, e.g. BCCD=path/to/BCCD" >&2; exit 2; }
	@[ -d "$(BCCD)" ] || { echo "bccd-bench: BCCD=$(BCCD): no such folder" >&2; exit 2; }

$(BCCD_OUT)/teacher/model_final.ckpt: $(BCCD_TEACHER) $(BCCD_OUT)/knobs.txt | bccd-check
	rm -rf $(@D)
	bin/detect-train -c $(BCCD_TEACHER) $(bccd_o) --out $(@D)

$(BCCD_OUT)/eval/teacher-%.json: $(BCCD_OUT)/teacher/model_final.ckpt
	bash pipelines/evaluate.sh teacher $(BCCD_TEACHER) $< $@ $* $(bccd_kv)

# bccd_seed SEED: the students of one seed and their evaluations.
define bccd_seed
$(BCCD_OUT)/s$(1)/baseline/model_final.ckpt: $(BCCD_STUDENT) $(BCCD_OUT)/knobs.txt | bccd-check
	rm -rf $$(@D)
	bin/detect-train -c $(BCCD_STUDENT) $$(bccd_o) -o train.seed=$(1) --out $$(@D)

$(BCCD_OUT)/s$(1)/soft.arrow: $(BCCD_OUT)/teacher/model_final.ckpt $(BCCD_STUDENT) $(BCCD_OUT)/knobs.txt | bccd-check
	views=$$$$(bash pipelines/views.sh $(BCCD_STUDENT) $$(bccd_o)); \
	bin/teacher-dump -c $(BCCD_TEACHER) --weights $$< $$(bccd_o) \
	  --student-config $(BCCD_STUDENT) $$(foreach kv,$$(bccd_kv),--student-override $$(kv)) \
	  --seed $(1) --views $$$$views --out $$@
.INTERMEDIATE: $(BCCD_OUT)/s$(1)/soft.arrow

$(BCCD_OUT)/eval/baseline-s$(1)-%.json: $(BCCD_OUT)/s$(1)/baseline/model_final.ckpt
	bash pipelines/evaluate.sh baseline $(BCCD_STUDENT) $$< $$@ $$* $$(bccd_kv)
endef

# bccd_distilled SEED, NAME: one distilled student of one seed.
define bccd_distilled
$(BCCD_OUT)/s$(1)/$(2)/model_final.ckpt: $(BCCD_OUT)/s$(1)/soft.arrow $(BCCD_STUDENT) $(BCCD_OUT)/knobs.txt
	rm -rf $$(@D)
	bin/student-train -c $(BCCD_STUDENT) $$(bccd_o) -o train.seed=$(1) $$(foreach kv,$$(bccd_loss_$(2)),-o $$(kv)) \
	  $$(foreach kv,$$(recipe_kv),--teacher-override $$(kv)) --soft-targets $$< --out $$(@D)

$(BCCD_OUT)/eval/$(2)-s$(1)-%.json: $(BCCD_OUT)/s$(1)/$(2)/model_final.ckpt
	bash pipelines/evaluate.sh $(2) $(BCCD_STUDENT) $$< $$@ $$* $$(bccd_kv) $$(bccd_loss_$(2))
endef

$(foreach s,$(SEEDS),$(eval $(call bccd_seed,$(s))))
$(foreach s,$(SEEDS),$(foreach d,$(BCCD_DISTILL),$(eval $(call bccd_distilled,$(s),$(d)))))

bccd_evals = $(foreach z,$(BCCD_SIZES),$(BCCD_OUT)/eval/teacher-$(z).json \
  $(foreach s,$(SEEDS),$(foreach r,baseline $(BCCD_DISTILL),$(BCCD_OUT)/eval/$(r)-s$(s)-$(z).json)))

$(BCCD_OUT)/results.json: $(bccd_evals) $(BCCD_OUT)/knobs-table.txt
	bash pipelines/bccd_results.sh json "$(SEEDS)" "$(BCCD_SIZES)" "$(BCCD_DISTILL)" $(BCCD_OUT)/eval >$@

$(BCCD_OUT)/results.md: $(BCCD_OUT)/results.json $(BCCD_OUT)/knobs-table.txt
	bash pipelines/bccd_results.sh md "$(SEEDS)" "$(BCCD_SIZES)" "$(BCCD_DISTILL)" $(BCCD_OUT)/eval >$@

# The knobs the models were made with (refused when they change) and those
# of the results (which are remade).
$(BCCD_OUT)/knobs.txt: | bccd-check
$(eval $(call knobs_rule,$(BCCD_OUT)/knobs.txt,refuse,bccd-bench,give another BCCD_OUT,BCCD ITERS SIZE RECIPE_O))
$(eval $(call knobs_rule,$(BCCD_OUT)/knobs-table.txt,follow,bccd-bench,,SEEDS BCCD_SIZES))

bccd-bench: build | bccd-check ## BCCD=DIR: teacher, baseline, L2, fine-grained and L2+fine-grained students over SEEDS, table at 608/416/320 (hours)
	@$(MAKE) --no-print-directory $(BCCD_OUT)/results.md
	@cat $(BCCD_OUT)/results.md

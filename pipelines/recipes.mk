# make voc-distill VOC=DIR and make coco-distill COCO=DIR: the two recipes of
# PaddleDetection's slim/distillation example, full size (days to weeks on a
# CPU):
#   VOC:  ResNet34-YOLOv3 teaches MobileNetV1-YOLOv3 with the L2 loss over the
#         three head outputs, weight 100 (yolov3_r34_voc.yml,
#         yolov3_mobilenet_v1_voc.yml; the original: +2.8 mAP at 608).
#   COCO: the same pair with the fine-grained loss, weight 1000
#         (yolov3_r34.yml, yolov3_mobilenet_v1.yml; the original: +2.1 AP).
# Steps: teacher (detect-train), baseline student (detect-train), distilled
# student (teacher-dump --out - | student-train --soft-targets -), evaluation
# of all three at 608/416/320 (pipelines/evaluate.sh), a markdown table in
# OUT/results.md. Each step is a file target: a failed step leaves no output.
#
# VOC=DIR: a VOC folder with Annotations/, JPEGImages/ and
#   ImageSets/Main/{trainval,test}.txt (VOC2007+2012 trainval merged, VOC2007
#   test, as PaddleDetection's dataset/voc). COCO=DIR: annotations/
#   instances_{train,val}2017.json, train2017/, val2017/.
# Knobs (for smoke runs; the defaults are the recipes' own values):
#   ITERS=N       train.max_iters of all three trainings (warmup and decay
#                 milestones are left as configured)
#   SIZE=S        one training input size (data.augment.multi_scale=[S])
#   EVAL_SIZES    input sizes of the evaluation (default 608 416 320)
#   RECIPE_O      more -o KEY=VALUE overrides for every tool, e.g. a class
#                 list for a non-VOC folder
#   VOC_OUT, COCO_OUT  output folders (default out/voc, out/coco)
# The output folder records the knobs (VOC or COCO, ITERS, SIZE, RECIPE_O in
# OUT/knobs.txt, pipelines/knobs.mk): run again with other values into the
# same folder and make stops with both sets of values (use another
# VOC_OUT/COCO_OUT, delete it, or add REDO=1 to retrain with the new ones).
# EVAL_SIZES (OUT/knobs-table.txt) only remakes the table.
# Smoke run on a synthetic VOC folder (3 iterations at 64 px, ~2 minutes):
#   bin/dataset synth --out /tmp/vocsmall --format voc --images 80 --size 96 \
#     --classes circle,square --min-objects 1 --max-objects 3
#   make voc-distill VOC=/tmp/vocsmall ITERS=3 SIZE=64 EVAL_SIZES=64 VOC_OUT=/tmp/voc-out \
#     RECIPE_O='data.classes=[circle,square] model.num_classes=2 data.train_split=train train.batch_size=8'
# student-train gets the overrides twice: with -o for the student and with
# --teacher-override for its teacher (distill.teacher_overrides), so that its
# teacher check sees the teacher that was trained and dumped.

VOC ?=
COCO ?=
VOC_OUT ?= out/voc
COCO_OUT ?= out/coco
ITERS ?=
SIZE ?=
EVAL_SIZES ?= 608 416 320
RECIPE_O ?=
recipe_kv = $(if $(ITERS),train.max_iters=$(ITERS)) $(if $(SIZE),data.augment.multi_scale=[$(SIZE)]) $(RECIPE_O)

.PHONY: voc-distill coco-distill voc-check coco-check

voc-check:
	@[ -n "$(VOC)" ] || { echo "voc-distill: set VOC=DIR, a Pascal VOC folder (Annotations/, JPEGImages/, ImageSets/Main/)" >&2; exit 2; }
	@[ -d "$(VOC)" ] || { echo "voc-distill: VOC=$(VOC): no such folder" >&2; exit 2; }
coco-check:
	@[ -n "$(COCO)" ] || { echo "coco-distill: set COCO=DIR, a COCO folder (annotations/instances_*.json, train2017/, val2017/)" >&2; exit 2; }
	@[ -d "$(COCO)" ] || { echo "coco-distill: COCO=$(COCO): no such folder" >&2; exit 2; }

# distill_recipe NAME, OUT, DATA, TEACHER, STUDENT, OUT_VAR, DATA_VAR: the
# rules of one recipe.
# The distilled student reads the teacher's soft targets as a stream; the
# stream must hold train.max_iters batches, so teacher-dump makes enough views
# (epochs of the training split) as pipelines/views.sh works out from the
# split's size, the batch size and the iterations (a little more; the extra
# views are read and dropped).
define distill_recipe
$(2)/teacher/model_final.ckpt: $(4) $(2)/knobs.txt | $(1)-check
	rm -rf $$(@D)
	bin/detect-train -c $(4) -o data.root=$(3) $$(foreach kv,$$(recipe_kv),-o $$(kv)) --out $$(@D)

$(2)/baseline/model_final.ckpt: $(5) $(2)/knobs.txt | $(1)-check
	rm -rf $$(@D)
	bin/detect-train -c $(5) -o data.root=$(3) $$(foreach kv,$$(recipe_kv),-o $$(kv)) --out $$(@D)

$(2)/distilled/model_final.ckpt: $(2)/teacher/model_final.ckpt $(5) $(2)/knobs.txt | $(1)-check
	rm -rf $$(@D)
	views=$$$$(bash pipelines/views.sh $(5) -o data.root=$(3) $$(foreach kv,$$(recipe_kv),-o $$(kv))); \
	bin/teacher-dump -c $(4) --weights $$< -o data.root=$(3) $$(foreach kv,$$(recipe_kv),-o $$(kv)) \
	  --student-config $(5) --student-override data.root=$(3) $$(foreach kv,$$(recipe_kv),--student-override $$(kv)) \
	  --views $$$$views --out - \
	| bin/student-train -c $(5) -o data.root=$(3) $$(foreach kv,$$(recipe_kv),-o $$(kv)) \
	  $$(foreach kv,$$(recipe_kv),--teacher-override $$(kv)) --soft-targets - --out $$(@D)

$(2)/eval/teacher-%.json: $(2)/teacher/model_final.ckpt
	bash pipelines/evaluate.sh teacher $(4) $$< $$@ $$* data.root=$(3) $$(recipe_kv)
$(2)/eval/baseline-%.json: $(2)/baseline/model_final.ckpt
	bash pipelines/evaluate.sh baseline $(5) $$< $$@ $$* data.root=$(3) $$(recipe_kv)
$(2)/eval/distilled-%.json: $(2)/distilled/model_final.ckpt
	bash pipelines/evaluate.sh distilled $(5) $$< $$@ $$* data.root=$(3) $$(recipe_kv)

$(2)/results.md: $$(foreach s,$$(EVAL_SIZES),$(2)/eval/teacher-$$(s).json $(2)/eval/baseline-$$(s).json $(2)/eval/distilled-$$(s).json) $(2)/knobs-table.txt
	bash pipelines/table.sh "$(1)-distill ($(3))" $$(filter %.json,$$^) >$$@

# The knobs the models were made with (refused when they change) and those
# of the table (which is remade).
$(2)/knobs.txt: | $(1)-check
$$(eval $$(call knobs_rule,$(2)/knobs.txt,refuse,$(1)-distill,give another $(6),$(7) ITERS SIZE RECIPE_O))
$$(eval $$(call knobs_rule,$(2)/knobs-table.txt,follow,$(1)-distill,,EVAL_SIZES))
endef

$(eval $(call distill_recipe,voc,$(VOC_OUT),$(VOC),pipelines/configs/yolov3_r34_voc.yml,pipelines/configs/yolov3_mobilenet_v1_voc.yml,VOC_OUT,VOC))
$(eval $(call distill_recipe,coco,$(COCO_OUT),$(COCO),pipelines/configs/yolov3_r34.yml,pipelines/configs/yolov3_mobilenet_v1.yml,COCO_OUT,COCO))

voc-distill: build | voc-check ## VOC=DIR: ResNet34 teaches MobileNetV1, L2 loss (days; ITERS=, SIZE=, EVAL_SIZES= shrink it; other values need another VOC_OUT or REDO=1)
	@$(MAKE) --no-print-directory $(VOC_OUT)/results.md
	@cat $(VOC_OUT)/results.md

coco-distill: build | coco-check ## COCO=DIR: ResNet34 teaches MobileNetV1, fine-grained loss (weeks; ITERS=, SIZE=, EVAL_SIZES=; other values need another COCO_OUT or REDO=1)
	@$(MAKE) --no-print-directory $(COCO_OUT)/results.md
	@cat $(COCO_OUT)/results.md

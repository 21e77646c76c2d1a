# Knob records (pipelines/knobs.sh): an output folder remembers the make
# variables its outputs were made with, and a target notices when they
# change, instead of reusing outputs (and reprinting a table) made with other
# values. Shared by the pipelines (recipes.mk, bccd.mk; demo.mk can use it the
# same way).
#
# $(call knobs_rule,FILE,MODE,WHO,FIX,NAMES) makes FILE a target that is
# checked on every make: it records NAME=$(NAME) for each variable in NAMES.
# List FILE as a prerequisite of the targets made with those values. MODE
# refuse stops with a message when they changed (REDO=1 redoes instead);
# follow redoes what depends on FILE (for cheap steps: a table).

.PHONY: knobs-force
knobs-force: ;

# knob_arg NAME: 'NAME=value' quoted for bash.
knob_arg = '$(1)=$(subst ','\'',$(strip $($(1))))'

define knobs_rule
$(1): knobs-force
	@REDO='$$(REDO)' bash pipelines/knobs.sh $(2) $$@ '$(3)' '$(4)' $$(foreach n,$(5),$$(call knob_arg,$$(n)))
endef

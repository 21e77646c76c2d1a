package config

import (
	"math"
	"strings"

	"yolodistill/pkg/anchor"
)

// Config is a complete configuration. The zero value is not useful: start
// from Defaults or Load.
type Config struct {
	Model   ModelConfig   `yaml:"model"`
	Loss    LossConfig    `yaml:"loss"`
	Data    DataConfig    `yaml:"data"`
	Train   TrainConfig   `yaml:"train"`
	Eval    EvalConfig    `yaml:"eval"`
	Distill DistillConfig `yaml:"distill"`

	// Path is the file the configuration was loaded from ("" for Defaults);
	// relative paths inside the configuration (distill.teacher) resolve
	// against its folder, or against Dir when set. Not serialised.
	Path string `yaml:"-"`
	// Dir, when set, is the folder relative paths resolve against instead
	// of Path's: for a checkpoint's stored configuration, the folder of the
	// file the run started from (checkpoint meta "config_dir"). Not
	// serialised.
	Dir string `yaml:"-"`

	// stored is set by ParseStored. Not serialised.
	stored bool

	// overrides maps each key an -o override set to "-o KEY=VALUE" (Errorf
	// blames them). Not serialised.
	overrides map[string]string
}

// ModelConfig describes the detector. Everything here changes the network
// (or the meaning of its outputs) and enters ModelHash.
type ModelConfig struct {
	// Architecture is the detector family; only "YOLOv3".
	Architecture string `yaml:"architecture"`
	// Backbone is "mobilenet_v1", "resnet34" or "resnet18".
	Backbone string `yaml:"backbone"`
	// BackboneWidth multiplies every backbone channel count (1.0 = the
	// reference network).
	BackboneWidth float64 `yaml:"backbone_width"`
	// HeadWidth multiplies every YOLOv3 head channel count except the
	// output convolutions' 3*(5+C).
	HeadWidth float64 `yaml:"head_width"`
	// NumClasses is C, the number of object classes (no background class).
	NumClasses int `yaml:"num_classes"`
	// Anchors are (width, height) in input pixels, smallest first.
	Anchors []anchor.Anchor `yaml:"anchors"`
	// AnchorMasks lists, per output scale from the deepest (stride 32) to the
	// shallowest (stride 8), the indices into Anchors that scale predicts.
	AnchorMasks [][]int `yaml:"anchor_masks"`
	// ObjBiasInit, when set, initialises the bias of every objectness output
	// to this logit (e.g. logit(0.01) = -4.59512); nil keeps the layer's
	// default initialisation.
	ObjBiasInit *float64 `yaml:"obj_bias_init"`
	// Layout chooses between the two published builds of the same networks:
	// "torch" (the default; stored as "", and left out of the canonical text
	// and ModelHash: the feature taps and shortcuts of
	// ../shared/bench/torch_reference.py) or "paddle" (PaddleDetection's
	// static-graph build: MobileNetV1 taps conv3_2/conv4_2, ResNet res2a with
	// a 1x1 shortcut). Parameter counts and checkpoints differ between them.
	Layout string `yaml:"layout,omitempty"`
}

// LossConfig is the YOLOv3 detection loss (PaddleDetection's YOLOv3Loss).
type LossConfig struct {
	// IgnoreThresh: a non-positive prediction whose best IoU with any ground
	// truth exceeds it gets no objectness loss.
	IgnoreThresh float64 `yaml:"ignore_thresh"`
	// LabelSmooth enables label smoothing of the one-hot class targets
	// (operator path only): 1-delta / delta with delta = min(1/C, 1/40), as
	// Paddle's yolov3_loss.
	LabelSmooth bool `yaml:"label_smooth"`
	// UseFineGrainedLoss selects PaddleDetection's fine-grained loss path
	// (targets assigned in the data pipeline, Gt2YoloTarget) instead of the
	// operator path. The fine-grained distillation (distill.loss
	// fine_grained) requires it, as PaddleDetection's distill.py does.
	UseFineGrainedLoss bool `yaml:"use_fine_grained_loss"`
	// ScaleXY scales the sigmoid of the x, y offsets in the ignore test of the
	// operator path (1.0 = plain YOLOv3); the fine-grained path ignores it,
	// as PaddleDetection release/0.3 does.
	ScaleXY float64 `yaml:"scale_x_y"`
}

// DataConfig says where the images are and how training views are made.
type DataConfig struct {
	// Format is "voc", "coco" or "synth".
	Format string `yaml:"format"`
	// Root is the dataset folder; relative paths are relative to the working
	// directory of the tool (not to the config file).
	Root string `yaml:"root"`
	// TrainSplit and EvalSplit name the splits: for VOC the ImageSets/Main
	// list name ("trainval", "test"); for COCO the set name ("train2017"),
	// read from annotations/instances_<split>.json and <split>/; for synth
	// "train", "val" or "test".
	TrainSplit string `yaml:"train_split"`
	EvalSplit  string `yaml:"eval_split"`
	// Classes are the class names; label i is Classes[i]. Its length must
	// equal model.num_classes.
	Classes []string `yaml:"classes"`
	// MaxImageSide rejects images whose width or height exceeds it (pixels),
	// a guard against decoding absurd files. 0 means no limit.
	MaxImageSide int `yaml:"max_image_side"`
	// MaxObjects is the most objects (annotated boxes) one image may have:
	// an image with more is an error and left out, found while its
	// annotation is parsed, before any per-box work. 0 means no limit.
	MaxObjects int `yaml:"max_objects"`
	// MaxAnnotationMB refuses, before reading, an annotation file (a VOC
	// XML file, a COCO JSON file, a VOC split list) larger than this many
	// MiB. 0 means no limit.
	MaxAnnotationMB int `yaml:"max_annotation_mb"`
	// SkipLimit is the share of a split's images that may fail to load
	// (missing, truncated or corrupt files) and be skipped, each with one
	// warning, rounded up: the default 0.01 lets 1 image in 100 be skipped,
	// and at least one in any split; 0 skips none. Past it training stops
	// (exit 1) after saving a checkpoint to resume from, and evaluation,
	// teacher-dump and inference fail.
	SkipLimit float64 `yaml:"skip_limit"`
	// Workers is the number of goroutines decoding and augmenting images.
	Workers int `yaml:"workers"`
	// Augment is the training-view augmentation.
	Augment AugmentConfig `yaml:"augment"`
	// Synth parameterises the built-in synthetic set (format "synth").
	Synth SynthConfig `yaml:"synth"`
}

// AugmentConfig is PaddleDetection's YOLOv3 training reader, in its order:
// mixup, color distortion, random expand, random crop, horizontal flip, then
// per batch a random input size from MultiScale with a random interpolation,
// then normalisation.
type AugmentConfig struct {
	// Mixup blends two training images (and keeps both images' boxes).
	Mixup MixupConfig `yaml:"mixup"`
	// ColorDistort randomly changes brightness, contrast, saturation and hue
	// (as PaddleDetection's colour distortion does).
	ColorDistort bool `yaml:"color_distort"`
	// Expand places the image on a larger canvas (zoom out).
	Expand ExpandConfig `yaml:"expand"`
	// Crop is PaddleDetection's RandomCrop: a crop that keeps some boxes.
	Crop bool `yaml:"crop"`
	// Flip turns on random horizontal flips (probability FlipProb).
	Flip bool `yaml:"flip"`
	// FlipProb is the probability of a horizontal flip when Flip is on.
	FlipProb float64 `yaml:"flip_prob"`
	// MultiScale lists the square input sizes (pixels, multiples of 32) one of
	// which is drawn per batch; a single size means no multi-scale training.
	MultiScale []int `yaml:"multi_scale"`
	// RandomInterp draws the resize interpolation per batch; false keeps
	// the data loader's fixed one.
	RandomInterp bool `yaml:"random_interp"`
	// Mean and Std normalise RGB values scaled to [0, 1]: (v - mean) / std.
	Mean [3]float64 `yaml:"mean"`
	Std  [3]float64 `yaml:"std"`
	// MaxBoxes keeps at most this many ground-truth boxes per image
	// (PaddleDetection's PadBox, 50); 0 keeps all.
	MaxBoxes int `yaml:"max_boxes"`
}

// MixupConfig is mixup of two images with a Beta(Alpha, Beta) weight, used in
// the first Epochs epochs only.
type MixupConfig struct {
	// Enabled turns mixup on.
	Enabled bool `yaml:"enabled"`
	// Epochs: mixup is applied in the first Epochs epochs only.
	Epochs int `yaml:"epochs"`
	// Alpha and Beta are the two shape parameters of the beta distribution
	// the mixing weight is drawn from.
	Alpha float64 `yaml:"alpha"`
	Beta  float64 `yaml:"beta"`
}

// ExpandConfig is PaddleDetection's RandomExpand: with probability Prob the
// image is placed on a canvas up to Ratio times its size filled with Fill
// (RGB, 0..255).
type ExpandConfig struct {
	// Enabled turns random expansion on.
	Enabled bool `yaml:"enabled"`
	// Ratio is the largest canvas side as a multiple of the image's.
	Ratio float64 `yaml:"ratio"`
	// Prob is the probability that an image is expanded.
	Prob float64 `yaml:"prob"`
	// Fill is the canvas colour (RGB, 0..255).
	Fill [3]float64 `yaml:"fill"`
}

// SynthConfig parameterises the synthetic dataset (pkg/dataset's
// SynthOptions): NumImages square images of ImageSize pixels, split 80/10/10
// into "train", "val" and "test" by image index, each with MinObjects to
// MaxObjects shapes of MinObject to MaxObject pixels, generated
// deterministically from Seed. The class names (data.classes) are shape
// names. A zero MinObject or MaxObject takes the dataset's default.
type SynthConfig struct {
	// NumImages is the number of images, split 80/10/10 into train, val and
	// test by index.
	NumImages int `yaml:"num_images"`
	// ImageSize is the side of the square images in pixels.
	ImageSize int `yaml:"image_size"`
	// MinObjects and MaxObjects bound the number of shapes per image.
	MinObjects int `yaml:"min_objects"`
	MaxObjects int `yaml:"max_objects"`
	// MinObject and MaxObject bound a shape's side in pixels (0: the
	// dataset's default, max(8, size/40) and size/4).
	MinObject int `yaml:"min_object"`
	MaxObject int `yaml:"max_object"`
	// Seed makes the set: the same seed and settings give the same images.
	Seed int64 `yaml:"seed"`
}

// TrainConfig is the optimiser and loop: SGD with momentum and L2 weight
// decay; the learning rate ramps linearly from BaseLR*WarmupStartFactor to
// BaseLR over WarmupSteps iterations and is multiplied by Gamma at each
// milestone (PaddleDetection's LinearWarmup + PiecewiseDecay; pkg/train.Schedule computes it).
type TrainConfig struct {
	// MaxIters is the number of iterations; 0 writes the initialised (or
	// pretrained) model as model_final without a step.
	MaxIters int `yaml:"max_iters"`
	// BatchSize is the number of images per iteration (over every rank of
	// a data-parallel run: the global batch).
	BatchSize int `yaml:"batch_size"`
	// BaseLR is the learning rate after warmup and before any milestone.
	BaseLR float64 `yaml:"base_lr"`
	// Momentum is SGD's momentum.
	Momentum float64 `yaml:"momentum"`
	// WeightDecay is the L2 weight decay coefficient.
	WeightDecay float64 `yaml:"weight_decay"`
	// WarmupSteps is the number of iterations of the linear warmup.
	WarmupSteps int `yaml:"warmup_steps"`
	// WarmupStartFactor times BaseLR is the learning rate of the first
	// iteration.
	WarmupStartFactor float64 `yaml:"warmup_start_factor"`
	// Milestones are the iterations after which the learning rate is
	// multiplied by Gamma.
	Milestones []int `yaml:"milestones"`
	// Gamma multiplies the learning rate at each milestone.
	Gamma float64 `yaml:"gamma"`
	// SnapshotIter: a checkpoint (and an evaluation, when an eval split is
	// configured) every SnapshotIter iterations.
	SnapshotIter int `yaml:"snapshot_iter"`
	// KeepLast is how many periodic checkpoints are kept (model_final and
	// best_model are always kept).
	KeepLast int `yaml:"keep_last"`
	// Seed decides every random choice of a run: parameter initialisation
	// and the data order and augmentation.
	Seed int64 `yaml:"seed"`
	// LogIter: a progress line / metrics record every LogIter iterations.
	LogIter int `yaml:"log_iter"`
	// Pretrained is a path or http(s) URL of weights that initialise the
	// model ("" = none): our checkpoint, or any format pkg/weights reads
	// (PaddleDetection tar or folder, .pdparams, PyTorch state_dict,
	// safetensors; a backbone alone is fine). The --pretrained flag overrides it.
	Pretrained string `yaml:"pretrained"`
}

// EvalConfig is evaluation and inference.
type EvalConfig struct {
	// Metric is "voc" (mAP at IoU 0.5) or "coco" (AP at IoU 0.5:0.95).
	Metric string `yaml:"metric"`
	// MapType is the VOC AP interpolation: "11point" or "integral".
	MapType string `yaml:"map_type"`
	// Size is the square input size in pixels (multiple of 32).
	Size int `yaml:"size"`
	// BatchSize is the number of images per forward pass.
	BatchSize int `yaml:"batch_size"`
	// NMS is the post-processing of the head's boxes.
	NMS NMSConfig `yaml:"nms"`
	// DrawThreshold is the minimum score of a box drawn by detect-infer.
	DrawThreshold float64 `yaml:"draw_threshold"`
}

// NMSConfig is PaddleDetection's multiclass_nms: per class, boxes with score
// above ScoreThreshold, the NMSTopK best, greedy NMS at NMSThreshold IoU;
// then the KeepTopK best over all classes. Boxes are in pixels (Normalized
// false).
type NMSConfig struct {
	// ScoreThreshold: boxes with a lower class score are dropped first.
	ScoreThreshold float64 `yaml:"score_threshold"`
	// NMSTopK is how many of the best boxes per class enter NMS.
	NMSTopK int `yaml:"nms_top_k"`
	// KeepTopK is how many boxes per image are kept after NMS, over all
	// classes.
	KeepTopK int `yaml:"keep_top_k"`
	// NMSThreshold is the IoU above which the lower-scored of two boxes of
	// a class is suppressed.
	NMSThreshold float64 `yaml:"nms_threshold"`
	// Normalized must be false: boxes are in pixels.
	Normalized bool `yaml:"normalized"`
	// BackgroundLabel is the class index NMS skips; -1: none.
	BackgroundLabel int `yaml:"background_label"`
}

// DistillConfig is the distillation recipe of a student configuration.
type DistillConfig struct {
	// Teacher is the teacher's configuration file, relative to this file's
	// folder (see Config.TeacherPath); "" when not distilling.
	Teacher string `yaml:"teacher"`
	// TeacherOverrides are "KEY=VALUE" overrides applied to the teacher's
	// configuration (distill.teacher, or student-train's -t) wherever this
	// student's teacher is loaded and its model hash checked (LoadTeacher):
	// the -o the teacher was trained and dumped with. student-train's
	// --teacher-override appends to it, so the run's checkpoints carry them.
	TeacherOverrides []string `yaml:"teacher_overrides,omitempty"`
	// Loss is "none", "l2" (sum over the head outputs of mean squared
	// difference), "fine_grained" (PaddleDetection's split_distill),
	// "fsp", "soft_label" or "pairs" (the Pairs list); or several of them
	// joined by "+" (e.g. "l2+fine_grained": both losses, added), each with
	// its weight from Weights.
	Loss string `yaml:"loss"`
	// Weight multiplies the distillation loss before it is added to the
	// student's detection loss (PaddleDetection: 100 for l2, 1000 for
	// fine_grained). A combined loss ("a+b") takes Weights instead.
	Weight float64 `yaml:"weight"`
	// Weights of a combined loss ("l2+fine_grained"): one per part, in the
	// order of Loss; empty gives each part its kind's default (l2 100,
	// fine_grained 1000, others 1). Only for a combined loss.
	Weights []float64 `yaml:"weights,omitempty"`
	// Pairs are named teacher/student feature pairs (loss "pairs", "fsp",
	// "soft_label"); names are model-inspect's dotted output names.
	Pairs []PairConfig `yaml:"pairs"`
	// StudentTemperature and TeacherTemperature divide the logits of the
	// soft-label loss.
	StudentTemperature float64 `yaml:"student_temperature"`
	TeacherTemperature float64 `yaml:"teacher_temperature"`
	// WarnRatio: student-train warns once when the distillation loss has
	// stayed above WarnRatio times the detection loss for WarnIters
	// iterations in a row (a runaway: the weight drowns the student's own
	// loss); 0 never warns. Training goes on either way.
	WarnRatio float64 `yaml:"warn_ratio"`
	// WarnIters is how many iterations in a row the ratio must stay above
	// WarnRatio before the warning.
	WarnIters int `yaml:"warn_iters"`
}

// PairConfig is one distillation pair.
type PairConfig struct {
	// Student and Teacher are the feature maps' names (model-inspect lists
	// them).
	Student string `yaml:"student"`
	Teacher string `yaml:"teacher"`
	// Kind is "l2", "l1", "cosine" or "kl".
	Kind string `yaml:"kind"`
	// Adapter inserts a learned 1x1 convolution on the student side when the
	// channel counts differ.
	Adapter bool `yaml:"adapter"`
	// Weight multiplies this pair's loss (on top of DistillConfig.Weight).
	Weight float64 `yaml:"weight"`
}

// setDefaults is called on every new element of a list of PairConfig that
// a file or an override creates.
func (p *PairConfig) setDefaults() {
	p.Kind = "l2"
	p.Weight = 1
}

// Logit returns log(p / (1 - p)), the bias that makes sigmoid output p.
func Logit(p float64) float64 { return math.Log(p / (1 - p)) }

// Defaults returns PaddleDetection's YOLOv3 defaults (MobileNetV1 on VOC,
// release/0.3 values) with an empty class list; files and overrides start
// from here.
func Defaults() Config {
	return Config{
		Model: ModelConfig{
			Architecture:  "YOLOv3",
			Backbone:      "mobilenet_v1",
			BackboneWidth: 1,
			HeadWidth:     1,
			NumClasses:    20,
			Anchors:       anchor.Defaults(),
			AnchorMasks:   anchor.DefaultMasks(),
		},
		Loss: LossConfig{IgnoreThresh: 0.7, ScaleXY: 1},
		Data: DataConfig{
			Format:          "voc",
			Root:            "dataset/voc",
			TrainSplit:      "trainval",
			EvalSplit:       "test",
			MaxImageSide:    8192,
			MaxObjects:      10000,
			MaxAnnotationMB: 1024,
			SkipLimit:       0.01,
			Workers:         2,
			Augment: AugmentConfig{
				Mixup:        MixupConfig{Enabled: true, Epochs: 250, Alpha: 1.5, Beta: 1.5},
				ColorDistort: true,
				Expand:       ExpandConfig{Enabled: true, Ratio: 4, Prob: 0.5, Fill: [3]float64{123.675, 116.28, 103.53}},
				Crop:         true,
				Flip:         true,
				FlipProb:     0.5,
				MultiScale:   []int{320, 352, 384, 416, 448, 480, 512, 544, 576, 608},
				RandomInterp: true,
				Mean:         [3]float64{0.485, 0.456, 0.406},
				Std:          [3]float64{0.229, 0.224, 0.225},
				MaxBoxes:     50,
			},
			Synth: SynthConfig{NumImages: 640, ImageSize: 256, MinObjects: 3, MaxObjects: 14, Seed: 1},
		},
		Train: TrainConfig{
			MaxIters:          70000,
			BatchSize:         8,
			BaseLR:            0.001,
			Momentum:          0.9,
			WeightDecay:       0.0005,
			WarmupSteps:       1000,
			WarmupStartFactor: 0,
			Milestones:        []int{55000, 62000},
			Gamma:             0.1,
			SnapshotIter:      2000,
			KeepLast:          3,
			Seed:              1,
			LogIter:           20,
		},
		Eval: EvalConfig{
			Metric:    "voc",
			MapType:   "11point",
			Size:      608,
			BatchSize: 8,
			NMS: NMSConfig{
				ScoreThreshold:  0.01,
				NMSTopK:         1000,
				KeepTopK:        100,
				NMSThreshold:    0.45,
				Normalized:      false,
				BackgroundLabel: -1,
			},
			DrawThreshold: 0.5,
		},
		Distill: DistillConfig{
			Loss:               "none",
			Weight:             1,
			StudentTemperature: 1,
			TeacherTemperature: 1,
			WarnRatio:          100,
			WarnIters:          20,
		},
	}
}

// LossParts splits a combined distill.loss ("l2+fine_grained") into its
// kinds, in order; a single kind gives one part. Spaces around "+" are
// dropped.
func (d DistillConfig) LossParts() []string {
	parts := strings.Split(d.Loss, "+")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// Package distill holds the knowledge-distillation losses of the project as
// plain functions on float32 slices with analytic gradients: PaddleDetection's
// two YOLOv3 recipes (slim/distillation/distill.py, release/0.3: l2_distill,
// split_distill) and PaddleSlim's losses (paddleslim/dist/single_distiller.py:
// l2_loss, fsp_loss, soft_label_loss), plus pair losses (l2, l1, cosine, kl)
// over named feature maps; the Recipe a student configuration asks for (the
// terms, their student and teacher tensors); Student, which attaches a
// recipe to a student detector's training graphs (with learned adapters)
// reading the teacher's tensors of each batch from a Teacher (pkg/teacher
// implements it, online and offline); and MatchShapes, the teacher/student
// feature maps of equal shape, the candidates for pair losses (model-inspect
// -t); and Runaway, the warning that a distillation term drowns the
// detection loss (distill.warn_ratio). The losses themselves see no engine: a Loss is attached to a graph
// through pkg/nn's Builder.Loss with a Binding.
//
// # Conventions
//
// A Tensor is row-major float32 with its shape; head outputs are NCHW,
// [N, A*(5+C), H, W], with PaddleDetection's per-anchor channel layout x, y,
// w, h, obj, cls[0..C-1]. s denotes the student's values, t the teacher's.
// The teacher is a constant: only the student gets a gradient. Every mean is
// over all elements named in the loss's doc comment, batch included (Paddle's
// reduce_mean / paddle.mean), so a loss is a per-element average and does not
// scale with the batch size. Multi-tensor losses sum their per-pair terms and
// multiply by the weight once.
//
// Forward adds its gradient into the caller's buffers (accumulates), which
// pkg/nn hands over zeroed. Sums are accumulated in float64 in a fixed chunk
// order, so values do not depend on Options.Workers. After the first call
// with given shapes, Forward allocates nothing. Losses running on more than one
// worker start goroutines that live until their Close method is called.
//
// # Kinds
//
// New: "l2" (Elementwise, weight 100), "fine_grained" (FineGrained, weight
// 1000), "fsp" (FSP), "soft_label" (SoftLabel). NewPair: "l2", "l1"
// (Elementwise), "cosine" (Cosine), "kl" (KL), weight 1. Register and
// RegisterPair add user kinds. Each type's doc comment gives its formula and
// the reference it follows.
//
// Imports (make vet checks it): of this module only pkg/config, pkg/detector,
// pkg/nn, pkg/yolo (never the soft-target format, the teacher runtime or the
// training loop); never gorgonia directly (pkg/nn is the only user).
package distill

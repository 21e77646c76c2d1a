// Package nn is the neural-network layer set of yolodistill: convolution
// (any square kernel, stride, padding, groups, depthwise), BatchNorm fused
// with ReLU / LeakyReLU(0.1), max pooling, nearest 2x upsampling, channel
// concatenation, residual add, external losses and an SGD solver, on float32
// NCHW tensors. It is the only package that sees gorgonia: callers work with
// plain slices, shapes and the types below.
//
// # Building and running a graph
//
//	ps := nn.NewParamSet(seed)                  // parameters, shared by every graph
//	b := nn.NewBuilder(ps, []int{N, 3, H, W})   // one static-shape graph
//	x := b.Input()                              // named "input"
//	y := b.ConvBNAct("backbone.stem", x, nn.ConvSpec{Out: 32, K: 3, Stride: 2, Pad: 1}, nn.ActReLU)
//	...
//	b.Loss("yolo", []*nn.Tensor{out0, out1, out2}, lossFunc) // dLoss/dOut in plain Go
//	g, err := b.Build()
//	copy(g.Input(), batch)                      // or g.SetInput(batch)
//	losses, err := g.Step()                     // forward + backward, fills Param.Grad
//	solver.Step(lr)                             // nn.NewSGD(ps, 0.9, 5e-4)
//	err = g.Forward(false)                      // inference: running BN statistics
//	vals, shape := g.Tensor("head.0.route")     // any named tensor
//
// Every layer output has the dotted name given to the layer; Builder.Name adds
// aliases; Graph.Names lists them with shapes and FLOPs. ConvBNAct(name) also
// names its pre-BatchNorm convolution output name+".conv".
//
// Parameters are created in the ParamSet on first use by name:
// name+".weight" [Out, Cin/Groups, K, K] (He/MSRA normal, L2-decayed),
// name+".bias" [Out] (0, not decayed), name+".bn.scale" (1), name+".bn.bias" (0)
// (trainable, not decayed, as PaddleDetection's norm_decay 0), and the
// BatchNorm running statistics name+".bn.mean" (0) and name+".bn.var" (1),
// which are non-trainable state updated by training-mode forwards. Initial
// values depend only on the set's seed and the parameter name. A graph built
// for another input size with the same names shares the same parameters
// (multi-scale training builds one graph per size once and reuses them).
//
// BatchNorm running statistics follow Paddle by default (DefaultBN: running =
// 0.9*running + 0.1*batch, biased batch variance, eps 1e-5); torch's module
// (momentum 0.1) is the same update with the unbiased variance,
// BNConfig.UnbiasedRunningVar.
//
// # Data parallel
//
// For training over several processes, each holding a share of a global
// batch: Graph.SetBatchShare scales every loss by the share (losses are means
// over the batch), and ParamSet.SetBatchSync synchronises BatchNorm over the
// processes (the statistics of the global batch, the same running statistics
// everywhere). Summing the parameter gradients over the processes is the
// caller's (pkg/train, through pkg/dist); this package never communicates
// by itself.
//
// # Engine and buffer ownership
//
// Each layer is a gorgonia Op of this package (forward and backward kernels
// are ours: im2col + sgemm, 1x1 convolutions as a plain sgemm, direct
// depthwise loops, fused BatchNorm+activation); Build differentiates the sum
// of the attached losses symbolically and compiles a gorgonia tape machine
// that Step runs. Forward runs the forward ops directly, without the tape.
//
//   - Every op's output buffer is a slot of its ParamSet's arena, allocated
//     when the graph is built and returned from every run; run rewrites it
//     completely. gorgonia may add other gradients into a buffer an op
//     returned (fan-out), so no op keeps private state in a returned buffer;
//     state a backward op needs (saved BatchNorm statistics, max-pool
//     arg-maxes, loss gradients) lives in private slices of the forward op,
//     and ordering comes from graph inputs.
//   - All graphs built on one ParamSet share the arena: slot k serves the
//     k-th op of every graph and is sized for the largest, so one graph per
//     input size costs the memory of the largest graph, not the sum. Hence
//     graphs on one ParamSet must run one at a time, and running one
//     overwrites the tensors of the others: read a graph's results before
//     running another graph of the same ParamSet.
//   - A training graph's activation gradients share slots by lifetime: a
//     gradient lives from the backward op that writes it to the last node
//     of the tape that reads it (a fan-out sum that gorgonia may do in place
//     counts as a reader of both terms), in the tape's own order, which Step
//     checks. Forward outputs, parameter gradients and the gradients named
//     in Builder.KeepGrads keep their own slots; TensorGrad returns nil for
//     the other tensors. The bits computed are the same either way.
//   - Slices from Graph.Tensor and Graph.TensorGrad are arena buffers: valid
//     until the next Forward or Step of any graph on the same ParamSet.
//     Graph.Input is the graph's own buffer. Param.Data and Param.Grad never
//     move. A backward op that alone computes a parameter's gradient writes
//     it straight into Param.Grad (no slot, no copy).
//   - LossFunc receives the input values and zeroed gradient buffers owned by
//     the graph, valid during the call only.
//   - Scratch (per-worker im2col columns, per-chunk partial weight
//     gradients) lives in the arena too and grows on first use only:
//     steady-state steps do not allocate activation-sized memory.
//   - Kernels split their work into items that depend on the tensor shapes
//     only (images; for batches under 4 images, bands of output rows or
//     blocks of output channels of each image; channels; planes; at most 4
//     batch chunks of a weight gradient); GOMAXPROCS goroutines merely pick
//     items. Every sgemm call and every sum is therefore the same whatever
//     the worker count, and partial sums are added in item order: results
//     are bitwise identical for any GOMAXPROCS, for a given sgemm kernel set
//     (BLASCore) and build.
//
// sgemm is OpenBLAS through cgo under the build tag openblas (forced to one
// thread: its spinning threads would steal cores from our goroutines), and
// gonum's pure-Go Sgemm otherwise (CGO_ENABLED=0 works). BLASName and
// BLASCore say which, and BuildInfo says both (the tools' --version). OpenBLAS
// picks its kernels when it is loaded, from OPENBLAS_CORETYPE or by
// detection; when detection does not know the CPU and falls back to its
// generic Prescott kernels, this package switches to the best set the CPU
// allows (SkylakeX, Haswell or SandyBridge: 3.5x faster than Prescott on an
// AVX-512 Xeon). SetBLASCore switches them afterwards. Each kernel set rounds
// differently: results are bit-identical across worker counts, not across
// kernel sets.
//
// Under the build tag dnnl (make adds it when libdnnl-dev is installed),
// convolutions run oneDNN 2.6, PyTorch's CPU engine: the training forward
// and input gradient as one call over the batch on as many OpenMP threads as
// workers, the inference forward as one single-threaded call per worker over
// its run of images (oneDNN computes each image alike whatever shares the
// call and however many threads run it, which TestDNNLBatchInvariance
// checks), the weight gradient as one single-threaded call per fixed batch
// chunk, so the worker-count independence above holds; activations and weights are
// reordered into oneDNN's blocked layouts and back around each call. Our
// kernels stay the fallback (shapes oneDNN declines, YOLODISTILL_NO_DNNL=1,
// builds without the tag) and the tests compare both. ConvName says which run.
// The weight gradient's chunk partials are added in oneDNN's layout and
// reordered once; a convolution's two gradient ops share dy's reorder.
//
// A training graph keeps a ConvBNAct's convolution and BatchNorm outputs in
// oneDNN's blocked layout (nChw16c with AVX-512, nChw8c with AVX2) when the
// convolutions on both sides take it in all their training primitives
// (planBlocked, blocked.go): no reorders between them, and BatchNorm kernels
// over that layout doing each channel's operations of the plain kernels, so
// the bits are those of plain tensors (TestBlockedTrainingMatchesPlain).
// Graph.Tensor and TensorGrad return plain copies. YOLODISTILL_NO_BLOCKED=1
// keeps every tensor plain.
//
// Forward(false) folds each ConvBNAct's BatchNorm into its convolution
// (weights scaled per output channel plus a bias, the activation applied as
// the output is written); the pre-BN output name+".conv" is then computed
// only when Graph.Tensor asks for it. Builder.ReuseBuffers lets an inference
// graph's layers share buffers by lifetime, keeping only named tensors.
//
// Forward(false) of a graph without losses runs in image groups: the batch
// split into one group of consecutive images per worker, each group through
// the whole network on its own goroutine with its kernels on that goroutine
// (no wait for the other workers at every layer; ~10% more images/s for
// ResNet34-YOLOv3 on 2 cores). The groups' graphs are built once from the
// layer calls the Builder recorded, over the same parameters, with buffers
// of their own (one arena per group index on the ParamSet); Graph.Tensor
// gathers their results. Each image is computed as in one pass over the
// batch (convolutions plan their work by the whole batch's size; oneDNN is
// batch-invariant), so the bits are the same (TestInferGroups). In a group
// that keeps only named tensors (ReuseBuffers), a ConvBNAct whose output
// only ConvBNActs read passes it on in oneDNN's own layout when their
// primitives take it (planLinks): no reorder out and back in between them
// (about half of inference's activation reorders). YOLODISTILL_NO_GROUPS=1
// runs one pass instead.
//
// A Graph is not safe for concurrent use, and graphs sharing a ParamSet must
// not run at the same time. Graphs on different ParamSets (a teacher and a
// student) are independent.
//
// Imports (make vet checks it): of this module only pkg/nn/simd (its vector
// kernels). It is the only package that imports gorgonia.
package nn

// Package weights reads model weights written by other frameworks and maps
// them onto this project's models: PaddleDetection 1.x weights (a folder or
// tar of one LoDTensor file per variable, as its released models are),
// Paddle .pdparams (pickled numpy arrays: fluid.save and paddle.save),
// PyTorch state_dicts (.pth/.pt, zip or legacy pickle, read with
// github.com/nlpodyssey/gopickle), .safetensors, and our own checkpoints.
//
// Read picks the reader from the content, never from the file name, and
// returns a File: the tensors under the file's own names. Map translates a
// File onto a yolo.Spec by a naming scheme chosen from the names the file
// holds (ours; PaddleDetection's static-graph variable names; the module
// names of ../shared/bench/torch_reference.py; torchvision's ResNet) and
// says, per part (backbone, head), what was found, what is missing,
// unexpected or mis-shaped, and what was skipped as training state or an
// ImageNet classifier. A Mapping is strict: Whole requires every tensor of
// the model, Parts every tensor of each part the file touches.
//
// Open reads a path or an http(s) URL (downloaded once into a cache by
// pkg/checkpoint's Fetch machinery, verified by Read).
//
// Conventions: tensors are float32, row-major in the order of their shape
// (float16, bfloat16 and float64 data are converted on reading; integer
// tensors keep their shape and no data). Convolution weights are
// [out, in/groups, kH, kW] in every supported framework, so no tensor is
// transposed. Errors name the file and the first bad record (tar member,
// variable, pickle key or header entry).
//
// Imports (make vet checks it): of this module only pkg/checkpoint and
// pkg/yolo (layer names); never gorgonia directly.
package weights

// Package checkpoint reads and writes yolodistill checkpoints: msgpack files
// holding the format name and version, the configuration (canonical YAML
// text), named float32 tensors grouped in sections, the training state
// (iteration, RNG states, data-order position) and free-form metadata.
//
// Tensor data is stored as one msgpack bin blob of raw little-endian float32
// values per tensor, row-major in the order of its shape, with a CRC-32C of
// those bytes; never as arrays of msgpack floats. Files are written
// atomically (pkg/atomicfile): a reader sees the old file or the new one.
//
// This package uses plain Go slices only (no engine types), so any tool can
// read a checkpoint.
//
// Wire layout (msgpack map, keys in this order):
//
//	format:   "yolodistill-checkpoint"
//	version:  1
//	config:   string (canonical YAML)
//	state:    {iteration: int, rng: {name: bin}, data_order: bin}
//	meta:     {string: string}
//	sections: [{name: string, tensors: [{name, shape: [int], dtype: "float32", crc32c: uint32, data: bin}]}]
//
// Imports (make vet checks it): of this module only pkg/atomicfile; never
// gorgonia, directly or through another package.
package checkpoint

// Runs an exported model in onnxruntime-node (CPU) and writes its outputs.
//
//   NODE_PATH=DIR/node_modules node ort_run.cjs MODEL.onnx IMAGE.bin N,C,H,W OUTDIR [IMSIZE.bin]
//
// IMAGE.bin is float32 little-endian [N, C, H, W] fed as "image"; IMSIZE.bin,
// when given, is int32 [N, 2] fed as "im_size". Every output is written to
// OUTDIR/NAME.bin (float32 little-endian) and OUTDIR/outputs.json lists
// {name: dims}. Used by tools/detect-export's TestONNXRuntime (make test-onnx).
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

async function main() {
  const [model, image, dimsArg, outDir, imSize] = process.argv.slice(2);
  const dims = dimsArg.split(",").map(Number);
  const buf = fs.readFileSync(image);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const session = await ort.InferenceSession.create(model, { executionProviders: ["cpu"] });
  const feeds = { image: new ort.Tensor("float32", Float32Array.from(data), dims) };
  if (imSize) {
    const b = fs.readFileSync(imSize);
    feeds.im_size = new ort.Tensor("int32", Int32Array.from(new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4)), [dims[0], 2]);
  }
  const out = await session.run(feeds);
  const meta = {};
  for (const name of session.outputNames) {
    const t = out[name];
    fs.writeFileSync(path.join(outDir, name + ".bin"), Buffer.from(new Float32Array(t.data).buffer));
    meta[name] = t.dims;
  }
  fs.writeFileSync(path.join(outDir, "outputs.json"), JSON.stringify(meta));
}

main().catch((e) => { console.error("ort_run: " + (e && e.stack || e)); process.exit(1); });

// Times an exported model in onnxruntime-node (CPU): images per second of
// session.run on random input, after warm-up runs.
//
//   NODE_PATH=DIR/node_modules node ort_bench.cjs MODEL.onnx N H W [RUNS] [THREADS]
//
// Prints one JSON line: {"impl": "onnxruntime-node", "batch", "size",
// "threads", "run_s_median", "images_per_s"}.
const ort = require("onnxruntime-node");

async function main() {
  const [model, n, h, w, runsArg, threadsArg] = process.argv.slice(2);
  const N = Number(n), H = Number(h), W = Number(w);
  const runs = Number(runsArg || 20), threads = Number(threadsArg || 2);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ["cpu"], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" });
  const x = new Float32Array(N * 3 * H * W);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i) * 2;
  const feeds = { image: new ort.Tensor("float32", x, [N, 3, H, W]) };
  for (let i = 0; i < 3; i++) await session.run(feeds);
  const ts = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ts.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  ts.sort((a, b) => a - b);
  const med = ts[Math.floor(ts.length / 2)];
  console.log(JSON.stringify({ impl: "onnxruntime-node " + (ort.env.versions ? ort.env.versions.common : ""), batch: N, size: [H, W], threads,
    run_s_median: +med.toFixed(5), images_per_s: +(N / med).toFixed(2) }));
}

main().catch((e) => { console.error("ort_bench: " + (e && e.stack || e)); process.exit(1); });

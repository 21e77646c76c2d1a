// Command detect-export writes a detector out for other runtimes: ONNX,
// opset 13.
//
//	detect-export [-c CONFIG] --weights W --out model.onnx [--format onnx]
//	              [--size N | --dynamic] [--keep-bn] [--decode]
//
// Without -c the configuration stored in the checkpoint is used (the one its
// training run used; detector.LoadConfig), -o applied to it; weights that
// carry none (a URL, another framework's file) need -c (exit 2).
//
// --weights takes anything the other tools take: our checkpoint, a
// PaddleDetection weights tar or folder, a Paddle .pdparams, a PyTorch
// state_dict (.pth/.pt) or .safetensors, by path or http(s) URL (downloaded
// once into --cache-dir); the file must hold the whole model.
//
// The model's input is "image", float32 [batch, 3, N, N] (batch symbolic; with
// --dynamic height and width are symbolic too), RGB normalised with
// data.augment.mean/std as the other tools feed the network. Its outputs are
// the three head maps output_s32, output_s16, output_s8 ([batch,
// A*(5+C), H/stride, W/stride]); with --decode (fixed size only) a second
// input "im_size" (int32 [batch, 2]: original height, width) and the outputs
// "boxes" [batch, M, 4] and "scores" [batch, C, M] as PaddleDetection's export
// gives them, NMS left to the runtime. BatchNorm is folded into the
// convolutions unless --keep-bn. Anchors, masks, strides, class names, input
// normalisation, decoding and NMS settings are in the model's metadata.
//
// stdout is data only: the model goes to --out ("-": stdout), written
// atomically. Exit codes: 0 ok, 1 configuration, weights or output failure,
// 2 usage, 130 interrupted.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/proto"

	"yolodistill/pkg/atomicfile"
	"yolodistill/pkg/checkpoint"
	"yolodistill/pkg/cli"
	"yolodistill/pkg/detector"
	"yolodistill/pkg/export"
	"yolodistill/pkg/nn"
	"yolodistill/pkg/yolo"
)

const name = "detect-export"

type grammar struct {
	Config   string   `short:"c" placeholder:"FILE" help:"model configuration (YAML) (default: the one stored in the --weights checkpoint)."`
	Override []string `short:"o" sep:"none" placeholder:"KEY=VALUE" help:"override a configuration key (repeatable)."`
	Weights  string   `required:"" placeholder:"PATH|URL" help:"the model's weights: our checkpoint, a PaddleDetection tar or folder, .pdparams, PyTorch .pth/.pt state_dict or .safetensors (recognised by content)."`
	CacheDir string   `name:"cache-dir" placeholder:"DIR" help:"where downloaded weights are kept (default: $XDG_CACHE_HOME/yolodistill or ~/.cache/yolodistill)."`
	Format   string   `default:"onnx" enum:"onnx" help:"output format (onnx: opset 13)."`
	Out      string   `required:"" placeholder:"FILE" help:"where to write the model ('-': stdout)."`
	Size     int      `placeholder:"N" help:"fixed square input size in pixels, a multiple of 32 (default: eval.size)."`
	Dynamic  bool     `help:"symbolic input height and width (any multiple of 32) instead of a fixed size."`
	KeepBN   bool     `name:"keep-bn" help:"keep BatchNormalization nodes instead of folding them into the convolutions."`
	Decode   bool     `help:"add PaddleDetection's yolo_box decoding: input im_size, outputs boxes and scores (NMS left to the runtime; needs a fixed size)."`
	cli.NetFlags
}

func main() {
	nn.TuneGC()
	os.Exit(cli.Main(run))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var g grammar
	log := cli.Logger{Name: name, W: stderr}
	if _, code, done := cli.ParseVersion(name, cli.Describe("Export a detector to ONNX (opset 13): head maps, or boxes and scores with --decode.",
		"detect-export --weights out/demo/distilled/model_final.ckpt --size 128 --decode --out student.onnx"), nn.BuildInfo(), &g, args, stderr); done {
		return code
	}
	if g.Size != 0 && g.Dynamic {
		log.Printf("error: --size and --dynamic exclude each other")
		return cli.ExitUsage
	}
	if g.Decode && g.Dynamic {
		log.Printf("error: --decode needs a fixed input size (drop --dynamic)")
		return cli.ExitUsage
	}
	if g.Size != 0 {
		if err := yolo.CheckInputSize(g.Size, g.Size); err != nil {
			log.Printf("error: --size: %v", err)
			return cli.ExitUsage
		}
	}
	if err := g.NetFlags.Check(); err != nil {
		return log.Fail(err)
	}
	ctx = checkpoint.WithFetch(ctx, checkpoint.FetchOptions{ConnectTimeout: g.ConnectTimeout, IdleTimeout: g.IdleTimeout, Logf: log.Printf})
	// The output must be writable before the weights are read or downloaded.
	if g.Out != "-" {
		if err := atomicfile.Check(g.Out); err != nil {
			return log.Fail(fmt.Errorf("--out: %w", err))
		}
	}
	cfg, err := detector.LoadConfig(g.Config, g.Weights, g.Override)
	if err != nil {
		return log.Fail(err)
	}
	size := g.Size
	if size == 0 {
		size = cfg.Eval.Size
	}
	det, warn, err := detector.Load(ctx, cfg, g.Weights, g.CacheDir)
	if err != nil {
		return log.Fail(err)
	}
	if warn != "" {
		log.Printf("warning: %s", warn)
	}
	m, err := export.Export(det, export.Options{Height: size, Width: size, Dynamic: g.Dynamic, KeepBN: g.KeepBN, Decode: g.Decode,
		Producer: nn.BuildInfo()})
	if err != nil {
		return log.Fail(err)
	}
	if g.Out == "-" {
		b, err := proto.Marshal(m)
		if err == nil {
			_, err = stdout.Write(b)
		}
		if err != nil {
			return log.Fail(err)
		}
	} else if err := export.Write(g.Out, m); err != nil {
		return log.Fail(err)
	}
	in := fmt.Sprintf("%dx%d", size, size)
	if g.Dynamic {
		in = "dynamic"
	}
	log.Printf("wrote %s: %s, ONNX opset %d, input %s, %d nodes, %d initializers", g.Out, det.Spec.Name, export.Opset, in, len(m.Graph.Node), len(m.Graph.Initializer))
	return cli.ExitOK
}

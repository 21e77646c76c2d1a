#!/usr/bin/env bash
# Regenerates onnx.pb.go from onnx.proto (ONNX 1.12, IR version 8, Apache-2.0;
# copied from Debian's python3-onnx: /usr/lib/python3/dist-packages/onnx/onnx.proto).
# Needs protoc (Debian protobuf-compiler) and protoc-gen-go of the
# google.golang.org/protobuf version in go.mod:
#   GOBIN=/tmp/gobin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   PATH=/tmp/gobin:$PATH bash pkg/export/onnxpb/gen.sh
set -euo pipefail
cd "$(dirname "$0")"
protoc --go_out=. --go_opt=paths=source_relative \
  --go_opt=Monnx.proto=yolodistill/pkg/export/onnxpb onnx.proto

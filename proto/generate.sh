#!/bin/sh
# Regenerate the Python gRPC stubs from the .proto files (run from the repository root):
#   pip install grpcio-tools && sh proto/generate.sh
set -e
out=proto
python3 -m grpc_tools.protoc -Iproto --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" proto/*.proto
# protoc writes absolute imports ("import status_pb2"); make them package-relative.
sed -i -E 's/^import ([a-z_]+_pb2) as /from . import \1 as /' "$out"/*_pb2_grpc.py

#!/bin/sh
# Regenerates remote_pb2.py and types_pb2.py (and their .pyi stubs) from Prometheus'
# prompb/remote.proto and prompb/types.proto, the remote-write 1.0 messages.
#
# Taken from github.com/prometheus/prometheus at commit
# d15adb9ad7e5d9fbde3a9a8f30200593a5a14d86, with only the gogoproto import and its
# field options removed (they change Go code generation, not the wire format), and
# types.proto imported by its path in this package so that the generated modules import
# each other as producer_api.formats.prompb.*. Generated with grpcio-tools 1.85.4
# (its bundled protoc, protobuf 7.35.1 gencode); the modules need that protobuf or newer.
#
# Usage, from the repository root, with the upstream files in $PROMPB (a checkout's
# prompb/ directory):  PROMPB=... sh producer_api/formats/prompb/generate.sh
set -eu
: "${PROMPB:?set PROMPB to Prometheus prompb/ directory}"
here=producer_api/formats/prompb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/$here"
for name in remote types; do
    sed -e '/import "gogoproto\/gogo.proto";/d' \
        -e 's/ \[(gogoproto\.[a-z_]*) = [a-z]*\]//' \
        -e 's|import "types.proto";|import "producer_api/formats/prompb/types.proto";|' \
        "$PROMPB/$name.proto" > "$work/$here/$name.proto"
done
.venv/bin/python -m grpc_tools.protoc -I "$work" --python_out=. --pyi_out=. \
    "$work/$here/types.proto" "$work/$here/remote.proto"

#!/usr/bin/env bash
# Runs every benchmark and load script; figures go to stdout (see
# docs/performance.md for what they mean). Bounded: about 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
run() { echo; echo "== $*"; "$@"; }
run bash -c 'cd platform/eventstore && go test -run XXX -bench "RawPublish|AppendSingle|AppendBatch10" -benchtime 3000x .'
run bash -c 'cd platform/eventstore && go test -run XXX -bench "Replay1M|LoadAggregateIn1M" -benchtime 3x .'
run bash -c 'cd services/apigw && go test -run XXX -bench . -benchtime 3000x .'
run bash -c 'cd services/provisioner && go test -run X -bench . -benchtime 50x .'
run bash -c 'cd services/stats && go test -run "^$" -bench . -benchtime=1x ./adapters/clickhouse ./adapters/memstore'
run bash -c 'cd agents/l7/nginx && go test -run XXX -bench ParseAccessLine .'
run bash bench/l7/run.sh
if [ "$(id -u)" -eq 0 ]; then run sh bench/l4/run.sh; else echo "== bench/l4 needs root (network namespaces); skipped"; fi

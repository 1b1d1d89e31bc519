#!/usr/bin/env bash
# The benchmark figures of loadtest/README.md: chatd pinned to core 0 (taskset -c 0, spawned by
# chatload), the generator (coordinator + 1 worker) pinned to core 1. About 4.5 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
R=loadtest/results
CL=".venv/bin/chatload"
PIN="--spawn-server --server-cpu 0 --cpu 1"
# fixed load: server CPU per accepted message (direct) and per delivery (group of 50)
$CL run loadtest/scenarios/direct.toml  $PIN --json $R/direct.json
$CL run loadtest/scenarios/group50.toml $PIN --json $R/group50.json
# overload (10x the scenario's rate; 5x for the channel): what is sustained, and which side saturates
$CL run loadtest/scenarios/direct.toml      $PIN --rate-scale 10 --json $R/direct-max.json
$CL run loadtest/scenarios/group50.toml     $PIN --rate-scale 10 --json $R/group50-max.json --plot $R/group50-max.png
$CL run loadtest/scenarios/channel5000.toml $PIN --rate-scale 5  --json $R/channel5000-max.json --plot $R/channel5000-max.png
# half load: half the acked msgs/s measured under overload
half() { .venv/bin/python -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['summary']['acked_per_s'] / 2 / float(sys.argv[2]), 3))" "$1" "$2"; }
$CL run loadtest/scenarios/direct.toml  $PIN --rate-scale "$(half $R/direct-max.json 2000)" --json $R/direct-half.json --plot $R/direct-half.png
$CL run loadtest/scenarios/group50.toml $PIN --rate-scale "$(half $R/group50-max.json 150)" --json $R/group50-half.json --plot $R/group50.png
# idle: RSS per authenticated idle connection at 10,000 connections
$CL idle loadtest/scenarios/idle.toml $PIN --json $R/idle.json
# end-to-end-encrypted traffic (217-byte e2e bodies), groups of 50, 2 devices per account
$CL run loadtest/scenarios/group50-e2e.toml $PIN --json $R/group50-e2e.json

#!/bin/bash
# Print `slsa-dist attest verify` on every real vendor vector in tests/assets/vectors/hw
# (docs/attestation.md; the issue-26 closing note quotes this output). Offline; each
# vector judged as of a time inside its collateral's window.
#   tools/hw_verdicts.sh [path/to/slsa-dist]
set -u
cd "$(dirname "$0")/.." || exit 2
CLI=${1:-.venv/bin/slsa-dist}
HW=tests/assets/vectors/hw
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# The v5 quote's collateral: its FMSPC's TCB info (as Intel PCS answered) with the
# FMSPC-independent pieces of another Intel sample (tests/unit/attest/test_hw_vectors.py).
PYTHONPATH=. "$(dirname "$CLI")/python" - "$TMP/v5.collateral.json" <<'PY'
import json, sys
from pathlib import Path
from slsa_dist.attest._collateral import pcs_signed_json
hw = Path("tests/assets/vectors/hw/tdx")
info, sig = pcs_signed_json((hw / "quote-v5.tcbinfo-response.json").read_bytes(), "tcbInfo")
data = json.loads((hw / "quote-v4-outdated.collateral.json").read_bytes())
Path(sys.argv[1]).write_text(json.dumps({**data, "tcb_info": info, "tcb_info_signature": sig}))
PY
run() { echo "\$ slsa-dist attest verify $*"; "$CLI" attest verify "$@"; echo "(exit $?)"; echo; }
T1=2025-06-20T12:00:00+00:00 T2=2026-02-19T12:00:00+00:00 T3=2024-06-01T00:00:00+00:00
run --kind tdx $HW/tdx/quote-v4.bin --collateral $HW/tdx/quote-v4.collateral.json --at $T1
run --kind tdx $HW/tdx/quote-v4-outdated.bin --collateral $HW/tdx/quote-v4-outdated.collateral.json --at $T2
run --kind tdx $HW/tdx/quote-v5.bin --collateral "$TMP/v5.collateral.json" --at $T2
run --kind tdx $HW/tdx/quote-v4.bin --collateral $HW/tdx/quote-v4.collateral.json --at $T1 \
  --nonce "$(printf '01%.0s' {1..32})" --job job-1 --node node-a
run --kind snp $HW/snp/go-sev-guest-milan.report.bin --collateral $HW/snp/go-sev-guest-milan.vcek.der --at $T1
run --kind snp $HW/snp/virtee-milan.report.hex --collateral $HW/snp/virtee-milan.vcek.der --at $T1
run --kind snp $HW/snp/trustee-azure-genoa.report.bin --collateral $HW/snp/trustee-azure-genoa.vcek.pem --at $T1
run --kind snp $HW/snp/trustee-milan-vlek.report.bin --collateral $HW/snp/trustee-milan-vlek.vlek.der \
  --collateral $HW/snp/go-sev-guest-milan.asvk.pem --at $T1
run --kind nvidia $HW/nvidia/hopperAttestationReport.txt --collateral $HW/nvidia/hopperCertChain.txt --at $T3
run --kind nvidia $HW/nvidia/hopperAttestationReport.txt --collateral $HW/nvidia/hopperCertChain.txt \
  --collateral $HW/nvidia/Driver_RIM_test_no_gpu.swidtag \
  --collateral $HW/nvidia/1010_0200_882_96005E0001_test_no_gpu.swidtag --at $T3

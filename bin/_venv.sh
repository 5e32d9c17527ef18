# Sourced by bin/demo, bin/test and bin/bench*: make .venv if missing and install
# bigw2v into it (editable) with the extras named in $BIGW2V_EXTRAS.
# Reinstalls only when pyproject.toml or the extras change. $BIGW2V_VENV names
# another venv directory (the benchmarks run bigw2v from one without extras).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${BIGW2V_VENV:-$root/.venv}"
extras="${BIGW2V_EXTRAS:-}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "setting up $venv ..." >&2
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
stamp="$venv/.bigw2v-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16) [$extras]"
if [ ! -f "$stamp" ] || ! grep -qxF -- "$want" "$stamp"; then
    spec="$root"
    [ -n "$extras" ] && spec="$root[$extras]"
    echo "installing bigw2v${extras:+ with $extras} into $venv ..." >&2
    "$venv/bin/python" -m pip install --quiet -e "$spec"
    printf '%s\n' "$want" >> "$stamp"
fi
export PATH="$venv/bin:$PATH"

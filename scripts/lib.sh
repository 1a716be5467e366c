# Shared by the scripts: a project virtualenv in .venv, reinstalled only when requirements change.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

# ensure_venv REQUIREMENTS_FILE: create .venv if needed and install the file's pins into it.
ensure_venv() {
  local reqs="$ROOT/$1" python="${PYTHON:-python3}"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setting up $VENV with $($python --version)" >&2
    "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  fi
  local stamp="$VENV/.stamp-$(basename "$reqs")"
  local digest
  digest="$(cat "$ROOT"/requirements*.txt | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "installing $(basename "$reqs") into $VENV" >&2
    "$VENV/bin/python" -m pip install -q -r "$reqs" >&2
    echo "$digest" > "$stamp"
  fi
}

# Shared by the scripts: `say` prints a step; `ensure_packages P...` installs the Debian packages
# that are missing, without recommends (sourced, not run).
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    say "installing Debian packages (no recommends): ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

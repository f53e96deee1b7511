# Sourced by main.sh and test.sh from the repository root: where the data sets are, unless SYNCO_DATA_ROOT is set.
# ../shared/datasets beside the repository; for a clone made elsewhere (git clone . /tmp/x), the same folder beside
# the repository it was cloned from.
if [ -z "${SYNCO_DATA_ROOT:-}" ]; then
  SYNCO_DATA_ROOT="$(cd .. && pwd)/shared/datasets"
  origin="$(git config --get remote.origin.url 2>/dev/null || true)"
  if [ ! -d "$SYNCO_DATA_ROOT" ] && [ -n "$origin" ] && [ -d "$origin/../shared/datasets" ]; then
    SYNCO_DATA_ROOT="$(cd "$origin/../shared/datasets" && pwd)"
  fi
fi
export SYNCO_DATA_ROOT

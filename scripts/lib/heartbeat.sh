# Sourced by the set-up scripts. heartbeat LABEL LOG CMD...: run CMD with its output in LOG,
# and while it runs print "LABEL: still running (Ns): <last line of LOG>" on stderr every
# ${HEARTBEAT_EVERY:-20} seconds, so a step of minutes (pip, an image build, debootstrap,
# podman load) is never silent. Returns CMD's exit status.
heartbeat() {
  local label=$1 log=$2 start=$SECONDS pid rc=0 last i
  shift 2
  "$@" >"$log" 2>&1 &
  pid=$!
  while :; do
    for ((i = 0; i < ${HEARTBEAT_EVERY:-20}; i++)); do
      sleep 1  # bash reaps the step while it waits, so kill -0 below sees it gone
      kill -0 "$pid" 2>/dev/null || break 2
    done
    last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-100)
    echo "$label: still running ($((SECONDS - start))s)${last:+: $last}" >&2
  done
  wait "$pid" || rc=$?
  return $rc
}

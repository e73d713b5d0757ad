#!/usr/bin/env bash
# Strong scaling of one weak-error study over MPI ranks × rayon threads (issue 10), and the
# communication volume. Usage: benches/mpi-scaling.sh [PATHS]   (default 200000)
# Needs the `mpi` build (see .ci/mpi-test for the packages; SDELAB_MPI_BIN=path uses one built before). Prints, per layout, the wall time of
# the whole command, the speed-up over 1 rank × 1 thread and the cost per path and process step;
# then the bytes one run exchanges (what every rank receives: the shards of the same run hold
# exactly those words). Wall times on a shared machine vary: read several runs.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=${1:-200000}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -n "${SDELAB_MPI_BIN:-}" ]; then
  cp "$SDELAB_MPI_BIN" "$work/sdelab"   # an MPI build made earlier
else
  cargo build --release -q -p sdelab --features mpi
  cp target/release/sdelab "$work/sdelab"
  cargo build --release -q -p sdelab
fi

# The workload is benches/mpi-scaling.toml at PATHS paths.
sed "s/^paths = .*/paths = $paths/" benches/mpi-scaling.toml > "$work/c.toml"
grep -q "^paths = $paths\$" "$work/c.toml"
# Iterations per path summed over the learning rates: 10 + 20; one ladder per η.
steps=30

run() { # run RANKS THREADS
  local np=$1 t=$2 start end
  start=$(date +%s.%N)
  if [ "$np" = 0 ]; then
    "$work/sdelab" --quiet --threads "$t" weak-error --config "$work/c.toml" --out "$work/o-plain" >/dev/null
  else
    mpirun --oversubscribe -np "$np" "$work/sdelab" --quiet --threads "$t" weak-error \
      --config "$work/c.toml" --out "$work/o-$np-$t" >/dev/null
  fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

base=$(run 0 1)
printf "%-22s %9s %8s %16s\n" layout "wall (s)" speedup "ns/(path·step)"
printf "%-22s %9.2f %8.2f %16.1f\n" "plain, 1 thread" "$base" 1 "$(echo "$base * 1000000000 / ($paths * $steps)" | bc -l)"
for layout in "0 2" "1 1" "1 2" "2 1" "2 2"; do
  set -- $layout
  t=$(run "$1" "$2")
  name=$([ "$1" = 0 ] && echo "plain, $2 threads" || echo "$1 rank(s) × $2 thread(s)")
  printf "%-22s %9.2f %8.2f %16.1f\n" "$name" "$t" "$(echo "$base / $t" | bc -l)" \
    "$(echo "$t * 1000000000 / ($paths * $steps)" | bc -l)"
done
for f in "$work"/o-*/result.json; do cmp "$work/o-plain/result.json" "$f"; done
echo "every layout wrote the same result.json"

for i in 0 1; do
  "$work/sdelab" --quiet weak-error --config "$work/c.toml" --out "$work/shards" --shard "$i/2" >/dev/null
done
bytes=$(cat "$work"/shards/*.sdelab | wc -c)
echo "communication: $bytes bytes of chunk statistics per run ($(echo "$bytes / $paths" | bc -l | cut -c1-6) bytes per path; O(chunks × save points × observables))"

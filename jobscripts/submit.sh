#!/bin/bash
# hpcmsm: submit a job script with sizes taken from environment variables.
#
#   jobscripts/submit.sh KIND [more sbatch options]
#   KIND: run | fe2 | phasefield | homogenize | qc | scaling   (jobscripts/KIND.sbatch)
#         sweep   (job array over the rows of SWEEP, then gather.sbatch after it)
#
# Environment: NODES, NTASKS, NTASKS_PER_NODE, TIME, PARTITION, ACCOUNT, QOS → sbatch options
# (TIME/PARTITION/ACCOUNT/QOS are exported as SBATCH_TIMELIMIT/SBATCH_PARTITION/... so that
# resubmitted continuations keep them); for sweep also SWEEP, TEMPLATE, COMMAND, SWEEP_DIR
# (default sweep_<date>), MAX_PARALLEL (array throttle %N), GATHER_X, GATHER_Y.  Everything
# else the job script reads (INPUT, ARGS, RESUBMIT, ...) travels with --export=ALL.
# Prints the job id(s).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export HPCMSM_HOME="${HPCMSM_HOME:-$(dirname "$here")}"
kind=${1:?usage: jobscripts/submit.sh run|fe2|phasefield|homogenize|qc|scaling|sweep [sbatch options]}
shift
opts=(--parsable)
if [ -n "${NODES:-}" ]; then opts+=(--nodes="$NODES"); fi
if [ -n "${NTASKS:-}" ]; then opts+=(--ntasks="$NTASKS"); fi
if [ -n "${NTASKS_PER_NODE:-}" ]; then opts+=(--ntasks-per-node="$NTASKS_PER_NODE"); fi
if [ -n "${TIME:-}" ]; then export SBATCH_TIMELIMIT="$TIME"; fi
if [ -n "${PARTITION:-}" ]; then export SBATCH_PARTITION="$PARTITION"; fi
if [ -n "${ACCOUNT:-}" ]; then export SBATCH_ACCOUNT="$ACCOUNT"; fi
if [ -n "${QOS:-}" ]; then export SBATCH_QOS="$QOS"; fi
case "$kind" in
    sweep)
        : "${SWEEP:?set SWEEP (sweep table)}" "${TEMPLATE:?set TEMPLATE}" "${COMMAND:?set COMMAND}"
        export SWEEP_DIR="${SWEEP_DIR:-$PWD/sweep_$(date +%Y%m%d_%H%M%S)}"
        n=$("$HPCMSM_HOME/run" python -m hpcmsm.bench.sweep count "$SWEEP")
        array="0-$((n - 1))${MAX_PARALLEL:+%$MAX_PARALLEL}"
        jid=$(sbatch "${opts[@]}" --array="$array" --export=ALL "$@" "$here/sweep.sbatch")
        jid=${jid%%;*}
        gid=$(sbatch --parsable --dependency="afterany:$jid" --export=ALL "$here/gather.sbatch")
        echo "sweep: $n tasks in array job $jid, gather job ${gid%%;*}, results in $SWEEP_DIR" >&2
        echo "$jid ${gid%%;*}"
        ;;
    run|fe2|phasefield|homogenize|qc|scaling)
        sbatch "${opts[@]}" --export=ALL "$@" "$here/$kind.sbatch"
        ;;
    *) echo "submit.sh: unknown kind '$kind'" >&2; exit 2 ;;
esac
